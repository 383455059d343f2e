# codec-bench: encode+decode cost of a small pool task (not a test).
# Included from shared/CMakeLists.txt.
add_executable(codec-bench ${CMAKE_CURRENT_LIST_DIR}/codec-bench.c)
target_link_libraries(codec-bench PRIVATE mutirao_shared PkgConfig::LUA m)

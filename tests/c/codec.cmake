# Tests of the closure codec (shared/codec/). Included by tests/CMakeLists.txt.
add_executable(test-codec ${CMAKE_CURRENT_LIST_DIR}/test-codec.c)
target_link_libraries(test-codec PRIVATE mutirao_shared PkgConfig::LUA m)
add_test(NAME codec COMMAND test-codec)
set_tests_properties(codec PROPERTIES TIMEOUT 300)
add_executable(test-codec-source ${CMAKE_CURRENT_LIST_DIR}/test-codec-source.c)
target_link_libraries(test-codec-source PRIVATE mutirao_shared PkgConfig::LUA m)
add_test(NAME codec_source COMMAND test-codec-source)

include(${CMAKE_CURRENT_LIST_DIR}/../fuzz/fuzz.cmake)

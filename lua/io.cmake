# lua/io.cmake: the `http` (libcurl multi on libuv) and `exec` (uv_spawn)
# modules, part of the Lua runtime. Included at the end of lua/CMakeLists.txt.
target_sources(mutirao_lua_obj PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/curl_uv.c ${CMAKE_CURRENT_LIST_DIR}/http.c
  ${CMAKE_CURRENT_LIST_DIR}/exec.c ${CMAKE_CURRENT_LIST_DIR}/iomods.c)
target_link_libraries(mutirao_lua_obj PUBLIC PkgConfig::CURL)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/http.c PROPERTIES
  COMPILE_DEFINITIONS MUTIRAO_VERSION="${PROJECT_VERSION}")

# require("http") / require("exec") from the stock lua5.4: http.so and exec.so
# are links to goroutine.so (one library, one scheduler per VM; dlopen finds
# the same loaded object through either name).
add_custom_command(TARGET goroutine_module POST_BUILD
  COMMAND ${CMAKE_COMMAND} -E create_symlink $<TARGET_FILE_NAME:goroutine_module>
    $<TARGET_FILE_DIR:goroutine_module>/http.so
  COMMAND ${CMAKE_COMMAND} -E create_symlink $<TARGET_FILE_NAME:goroutine_module>
    $<TARGET_FILE_DIR:goroutine_module>/exec.so
  VERBATIM)

# `cmake --install` into a temporary prefix, then the prefix used alone:
# pkg-config, lua5.4, the commands, the man pages (install_test.sh); and
# the rockspec (luarocks_test.sh).
# Normal builds only (a sanitizer build's libraries need its runtime
# preloaded, which a user's program and lua5.4 do not have). Label: install.
find_program(MUTIRAO_LUA54_INSTALL NAMES lua5.4)
if(MUTIRAO_SANITIZE OR NOT MUTIRAO_LUA54_INSTALL)
  message(STATUS "sanitizer build or no lua5.4: install test not registered")
  return()
endif()

add_test(NAME install.prefix
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/install_test.sh ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}
    ${CMAKE_INSTALL_LIBDIR} ${MUTIRAO_LUA_CMOD_DIR} ${MUTIRAO_LUA54_INSTALL})
set_tests_properties(install.prefix PROPERTIES LABELS install TIMEOUT 120 SKIP_RETURN_CODE 77)

# The rockspec with Debian's luarocks: make, pack, install into temporary
# trees (luarocks_test.sh; builds goroutine.so once more, ~20 s on 2 cores).
find_program(MUTIRAO_LUAROCKS NAMES luarocks)
if(NOT MUTIRAO_LUAROCKS)
  message(STATUS "luarocks not found: install.luarocks not registered")
  return()
endif()
add_test(NAME install.luarocks
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/luarocks_test.sh ${PROJECT_SOURCE_DIR} ${MUTIRAO_LUA54_INSTALL})
set_tests_properties(install.luarocks PROPERTIES LABELS install TIMEOUT 600)

# Lua specs of the goroutine module: one ctest test per tests/lua/*_spec.lua,
# run by busted under the stock lua5.4 against build/lib/goroutine.so.
# Label: lua.
find_program(MUTIRAO_LUA54 NAMES lua5.4)
find_program(MUTIRAO_BUSTED NAMES busted)
if(NOT MUTIRAO_LUA54 OR NOT MUTIRAO_BUSTED)
  message(STATUS "lua5.4 or busted not found: Lua specs not registered")
  return()
endif()

# (LUA_CPATH is not set here: its ';' would split the ENVIRONMENT list; busted's
# --cpath below prefixes the module directory instead.)
set(_lua_spec_env
  "MUTIRAO_LUA=${MUTIRAO_LUA54}"
  "MUTIRAO_MODULE_DIR=${CMAKE_BINARY_DIR}/lib"
  # sandbox_spec: variables a sandboxed task reads only with os.getenv
  "SANDBOX_SPEC_API_TOKEN=t0ken"
  "SANDBOX_SPEC_PLAIN=plain")

# goroutine.so built with ASan/UBSan is loaded into the uninstrumented lua5.4:
# the sanitizer runtimes must be preloaded. Leaks are checked by the C tests
# (lua5.4 itself is not instrumented, so its leak report would be noise).
if(MUTIRAO_SANITIZE STREQUAL "address")
  set(_preload "")
  foreach(_rt libasan.so libubsan.so)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${_rt}
      OUTPUT_VARIABLE _rt_path OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rt_path AND EXISTS "${_rt_path}")
      list(APPEND _preload "${_rt_path}")
    else()
      message(WARNING "sanitizer runtime ${_rt} not found: ASan Lua specs will not load")
    endif()
  endforeach()
  string(REPLACE ";" ":" _preload "${_preload}")
  list(APPEND _lua_spec_env
    "LD_PRELOAD=${_preload}"
    "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
elseif(MUTIRAO_SANITIZE STREQUAL "thread")
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libtsan.so
    OUTPUT_VARIABLE _rt_path OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND _lua_spec_env "LD_PRELOAD=${_rt_path}")
endif()

file(GLOB _lua_specs CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_spec.lua)
list(SORT _lua_specs)
foreach(_spec ${_lua_specs})
  get_filename_component(_name ${_spec} NAME_WE)
  add_test(NAME lua.${_name}
    COMMAND ${MUTIRAO_LUA54} ${MUTIRAO_BUSTED}
      --lpath=${CMAKE_CURRENT_LIST_DIR}/?.lua
      --cpath=${CMAKE_BINARY_DIR}/lib/?.so
      --output=plainTerminal --verbose
      ${_spec}
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
  set_tests_properties(lua.${_name} PROPERTIES
    LABELS lua
    TIMEOUT 60
    ENVIRONMENT "${_lua_spec_env}")
endforeach()

# The same specs under valgrind (normal builds only): the system liblua is not
# instrumented by ASan, so a write past a Lua stack from our C code is only
# seen here. Label: valgrind.
find_program(MUTIRAO_VALGRIND NAMES valgrind)
if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
  foreach(_spec ${_lua_specs})
    get_filename_component(_name ${_spec} NAME_WE)
    add_test(NAME valgrind.${_name}
      COMMAND ${MUTIRAO_VALGRIND} --error-exitcode=9 -q
        ${MUTIRAO_LUA54} ${MUTIRAO_BUSTED}
        --lpath=${CMAKE_CURRENT_LIST_DIR}/?.lua
        --cpath=${CMAKE_BINARY_DIR}/lib/?.so
        --output=plainTerminal
        ${_spec}
      WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    # (timing bounds of the specs scale by MUTIRAO_TIME_FACTOR under valgrind)
    set_tests_properties(valgrind.${_name} PROPERTIES
      LABELS valgrind
      TIMEOUT 300
      ENVIRONMENT "${_lua_spec_env};MUTIRAO_TIME_FACTOR=20")
  endforeach()
endif()

# Plain `busted` at the root of the checkout (.busted: each spec file in its
# own busted, tests/lua/spec_files.lua): --list and a filtered run, in a
# copy of the root whose build/ is this build (normal builds only).
if(NOT MUTIRAO_SANITIZE)
  add_test(NAME lua.busted_root
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/busted_root_test.sh ${PROJECT_SOURCE_DIR}
      ${CMAKE_BINARY_DIR} ${MUTIRAO_BUSTED})
  set_tests_properties(lua.busted_root PROPERTIES LABELS lua TIMEOUT 120)
endif()

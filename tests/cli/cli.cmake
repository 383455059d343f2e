# Behaviour tests of `mutirao run`: one ctest test per case of tests/cli/cli_test.py
# (exit statuses, --param, --workflow, depends_on, timeouts, deadlock, log formats...).
# Label: cli.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT TARGET mutirao OR NOT Python3_Interpreter_FOUND)
  message(STATUS "mutirao or python3 missing: CLI tests not registered")
  return()
endif()

execute_process(COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/cli_test.py x --list
  OUTPUT_VARIABLE _cli_cases OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _cli_rc)
if(NOT _cli_rc EQUAL 0)
  message(WARNING "tests/cli/cli_test.py --list failed: CLI tests not registered")
  return()
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cli_test.py)
string(REPLACE "\n" ";" _cli_cases "${_cli_cases}")

set(_cli_env "NO_COLOR=1")
if(MUTIRAO_SANITIZE STREQUAL "address")
  list(APPEND _cli_env "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

foreach(_case ${_cli_cases})
  add_test(NAME cli.${_case}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/cli_test.py
      $<TARGET_FILE:mutirao> ${_case}
    WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
  set_tests_properties(cli.${_case} PROPERTIES LABELS cli TIMEOUT 60 ENVIRONMENT "${_cli_env}")
endforeach()

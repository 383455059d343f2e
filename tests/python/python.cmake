# The Python producer (python/, package `mutirao` over libmutirao through
# ctypes): tests/python/run_pytest.py installs it with pip into a venv in the
# build tree (python.install, the fixture of the others), then runs its
# pytest tests: python.embedded (embedded backend, how the library is found)
# and python.fleet (real Kafka + Redis of tests/services.sh and
# mutirao-worker processes; skipped with exit 77 without them, failing when
# CI is set). Plain builds only: a sanitizer build's libmutirao.so cannot be
# loaded into a stock python3 without the sanitizer's runtime.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT Python3_Interpreter_FOUND OR NOT TARGET libmutirao_so OR MUTIRAO_SANITIZE)
  return()
endif()

set(_py_driver ${CMAKE_CURRENT_LIST_DIR}/run_pytest.py)
add_test(NAME python.install
  COMMAND ${Python3_EXECUTABLE} ${_py_driver} ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR} install)
set_tests_properties(python.install PROPERTIES LABELS python TIMEOUT 180
  FIXTURES_SETUP python_venv PASS_REGULAR_EXPRESSION "python.install: ok")

add_test(NAME python.embedded
  COMMAND ${Python3_EXECUTABLE} ${_py_driver} ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR} embedded)
set_tests_properties(python.embedded PROPERTIES LABELS python TIMEOUT 180
  FIXTURES_REQUIRED python_venv)

if(TARGET mutirao-worker)
  add_test(NAME python.fleet
    COMMAND ${Python3_EXECUTABLE} ${_py_driver} ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR} fleet)
  set_tests_properties(python.fleet PROPERTIES LABELS "python;integration;fleet" TIMEOUT 240
    FIXTURES_REQUIRED python_venv SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endif()

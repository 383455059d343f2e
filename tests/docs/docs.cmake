# The documentation against the repository (tests/docs/check_docs.py):
# every path README.md and docs/*.md name exists, and the compile block of
# docs/producer-library.md works as written against this build tree, and
# compose.yaml is a valid Compose file.
# Label: docs.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "python3 missing: documentation tests not registered")
  return()
endif()

add_test(NAME docs.paths
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_docs.py ${PROJECT_SOURCE_DIR} paths)
set_tests_properties(docs.paths PROPERTIES LABELS docs TIMEOUT 60)

if(TARGET libmutirao_so)
  add_test(NAME docs.producer_library
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_docs.py ${PROJECT_SOURCE_DIR}
      producer-library ${CMAKE_BINARY_DIR} "${MUTIRAO_SANITIZE}")
  set_tests_properties(docs.producer_library PROPERTIES LABELS docs TIMEOUT 120
    SKIP_RETURN_CODE 77)
endif()

# compose.yaml stays a valid Compose file (tests/docs/compose_config.sh).
add_test(NAME docs.compose_config
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/compose_config.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.compose_config PROPERTIES LABELS docs TIMEOUT 60 SKIP_RETURN_CODE 77)

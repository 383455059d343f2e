# C unit tests of shared/base: the intrusive list (list.h) and the error
# tables (errors.h) of every module checked against each other. Label: c.
# No services needed. In normal builds with valgrind installed the list test
# also runs under valgrind (label valgrind).
add_executable(test-list ${CMAKE_CURRENT_LIST_DIR}/test-list.c)
target_link_libraries(test-list PRIVATE mutirao_base)
add_test(NAME c.test-list COMMAND test-list)
set_tests_properties(c.test-list PROPERTIES LABELS c TIMEOUT 60)

add_executable(test-errors ${CMAKE_CURRENT_LIST_DIR}/test-errors.c)
target_include_directories(test-errors PRIVATE ${PROJECT_SOURCE_DIR}/producer
  ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(test-errors PRIVATE mutirao_runtime mutirao_redis mutirao_kafka mutirao_sign
  PkgConfig::LUA)
if(TARGET libmutirao_static)
  target_compile_definitions(test-errors PRIVATE TEST_PUBLIC_FUNCTIONS)
  target_link_libraries(test-errors PRIVATE libmutirao_static)
endif()
add_test(NAME c.test-errors COMMAND test-errors)
set_tests_properties(c.test-errors PROPERTIES LABELS c TIMEOUT 60)

find_program(MUTIRAO_VALGRIND NAMES valgrind)
if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
  add_test(NAME valgrind.test-list
    COMMAND ${MUTIRAO_VALGRIND} --error-exitcode=9 -q --leak-check=full
      --errors-for-leak-kinds=all $<TARGET_FILE:test-list>)
  set_tests_properties(valgrind.test-list PROPERTIES LABELS "c;valgrind" TIMEOUT 120)
endif()

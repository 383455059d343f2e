# C unit test of the counted close of libuv handles (shared/base/uv_closer.h).
# Label: c. No services needed. In normal builds with valgrind installed it
# also runs under valgrind (label valgrind): the owners it frees must see no
# use after free and nothing may leak.
add_executable(test-uv-closer ${CMAKE_CURRENT_LIST_DIR}/test-uv-closer.c)
target_link_libraries(test-uv-closer PRIVATE mutirao_base)
add_test(NAME c.test-uv-closer COMMAND test-uv-closer)
set_tests_properties(c.test-uv-closer PROPERTIES LABELS c TIMEOUT 60)

find_program(MUTIRAO_VALGRIND NAMES valgrind)
if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
  add_test(NAME valgrind.test-uv-closer
    COMMAND ${MUTIRAO_VALGRIND} --error-exitcode=9 -q --leak-check=full
      --errors-for-leak-kinds=all $<TARGET_FILE:test-uv-closer>)
  set_tests_properties(valgrind.test-uv-closer PROPERTIES LABELS "c;valgrind" TIMEOUT 120)
endif()

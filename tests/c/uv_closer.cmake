# C unit test of the counted close of libuv handles (shared/uv_closer.h).
# Label: c. No services needed. With valgrind installed it also runs under
# it (label valgrind): the owners it frees must see no use after free.
if(NOT TARGET mutirao_uvclose)
  return()
endif()

add_executable(test-uv-closer ${CMAKE_CURRENT_LIST_DIR}/test-uv-closer.c)
target_link_libraries(test-uv-closer PRIVATE mutirao_uvclose)
add_test(NAME c.test-uv-closer COMMAND test-uv-closer)
set_tests_properties(c.test-uv-closer PROPERTIES LABELS c TIMEOUT 60)

find_program(VALGRIND_EXECUTABLE valgrind)
if(VALGRIND_EXECUTABLE AND NOT MUTIRAO_SANITIZE)
  add_test(NAME c.test-uv-closer_valgrind
    COMMAND ${VALGRIND_EXECUTABLE} --error-exitcode=99 --errors-for-leak-kinds=all
      --leak-check=full -q $<TARGET_FILE:test-uv-closer>)
  set_tests_properties(c.test-uv-closer_valgrind PROPERTIES LABELS "c;valgrind" TIMEOUT 120)
endif()

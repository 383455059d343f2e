# C unit tests of the Lua runtime: the timer heap and the scheduler driven
# from C. Labels: c, tsan (the TSan build runs them). Run them in an ASan
# build (-DMUTIRAO_SANITIZE=address) to check for leaks: LeakSanitizer fails
# the test on any leak.

foreach(_t test-timerheap test-sched)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/${_t}.c)
  target_link_libraries(${_t} PRIVATE mutirao_runtime PkgConfig::LUA)
  add_test(NAME c.${_t} COMMAND ${_t})
  set_tests_properties(c.${_t} PROPERTIES LABELS "c;tsan" TIMEOUT 60)
endforeach()

# Pools across VM threads, run in a VM linked like the product's so that the
# TSan build (label tsan) sees the whole runtime.
add_executable(mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/lua-runner.c)
target_link_libraries(mutirao-test-lua PRIVATE mutirao_runtime PkgConfig::LUA)
add_test(NAME c.pool_threads
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/pool_threads.lua)
set_tests_properties(c.pool_threads PROPERTIES LABELS "c;tsan" TIMEOUT 120
  ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

# The pool VMs' accounting allocator (lua/pool/memlimit.h), driven from C.
# Label: c (leaks and early frees show in the ASan build).
add_executable(test-memlimit ${CMAKE_CURRENT_LIST_DIR}/test-memlimit.c)
target_link_libraries(test-memlimit PRIVATE mutirao_runtime PkgConfig::LUA)
add_test(NAME c.test-memlimit COMMAND test-memlimit)
set_tests_properties(c.test-memlimit PROPERTIES LABELS c TIMEOUT 60)

# The executor from C: executor_take_queued (the queued tasks given back,
# none run) and the drained hook.
add_executable(test-executor ${CMAKE_CURRENT_LIST_DIR}/test-executor.c)
target_link_libraries(test-executor PRIVATE mutirao_runtime PkgConfig::LUA)
add_test(NAME c.test-executor COMMAND test-executor)
set_tests_properties(c.test-executor PROPERTIES LABELS "c;tsan" TIMEOUT 60)

# Channels shared between VM threads (lua/core/channel.c, channel_core.c).
add_test(NAME c.channel_threads
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/channel_threads.lua)
set_tests_properties(c.channel_threads PROPERTIES LABELS "c;tsan" TIMEOUT 120
  ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

# mutex, rwmutex, semaphore, once and cond shared between VM threads.
add_test(NAME c.sync_threads
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/sync_threads.lua)
set_tests_properties(c.sync_threads PROPERTIES LABELS "c;tsan" TIMEOUT 120
  ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

# A context cancelled by a goroutine preempted while it cancels, children
# derived meanwhile on the same VM (one VM, 1 ms slices): all cancelled.
add_test(NAME c.context_preempt
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/context_preempt.lua)
set_tests_properties(c.context_preempt PROPERTIES LABELS "c;tsan" TIMEOUT 120
  ENVIRONMENT "MUTIRAO_PROCS=1;MUTIRAO_SLICE_MS=1;TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

# Goroutines of one VM asking contexts for done() at once, preempted inside
# it (1 ms slices): every channel given is closed by cancel(). Label c only:
# 400,000 calls, ~110 MB (too heavy for the TSan build).
add_test(NAME c.context_done_preempt
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/context_done_preempt.lua)
set_tests_properties(c.context_done_preempt PROPERTIES LABELS c TIMEOUT 120
  ENVIRONMENT "MUTIRAO_PROCS=1;MUTIRAO_SLICE_MS=1")

# A pool task killed by its timeout: its outcome comes once its goroutines'
# <close> handlers have run (a mutex one unlocks is free at await).
add_test(NAME c.pool_timeout_close
  COMMAND mutirao-test-lua ${CMAKE_CURRENT_LIST_DIR}/pool_timeout_close.lua)
set_tests_properties(c.pool_timeout_close PROPERTIES LABELS "c;tsan" TIMEOUT 120
  ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

# The examples under examples/, run with build/bin/mutirao by run_example.py, which
# checks exit status, key output lines and wall-time bounds. Label: examples.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT TARGET mutirao OR NOT Python3_Interpreter_FOUND)
  message(STATUS "mutirao or python3 missing: example tests not registered")
  return()
endif()

set(_ex_dir ${CMAKE_SOURCE_DIR}/examples)
set(_ex_run ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/run_example.py $<TARGET_FILE:mutirao>)

# hello.lua: a plain script (no tasks): three goroutines, 100..300 ms.
add_test(NAME example.hello COMMAND ${_ex_run} ${_ex_dir}/hello.lua
  --out "^hello from goroutine 1$" --out "^hello from goroutine 3$"
  --out "^all 3 goroutines finished$" --min 0.25 --max 1.5)

# waitgroup.sloth (the spec's Exemplo 3): three sleeps of 2 s, 1.5 s, 1 s at once.
add_test(NAME example.waitgroup COMMAND ${_ex_run} ${_ex_dir}/waitgroup.sloth
  --err "\\] fetch: OK$" --err "\\] transform: OK$" --err "\\] publish: OK$"
  --err "task 'sync_with_waitgroup' delegated to 'mariguica': no fleet configured, running locally"
  --out "^waitgroup +sync_with_waitgroup +success +2\\.0\\ds"
  --min 1.9 --max 3.0)

# timeout.sloth (the spec's Exemplo 4): 3 s of work under a 5 s limit.
add_test(NAME example.timeout COMMAND ${_ex_run} ${_ex_dir}/timeout.sloth
  --err "\\] done: guarded operation finished$"
  --out "^timeout +guarded_operation +success +3\\.0\\ds"
  --min 2.9 --max 4.0)

# parallel_deployment.sloth (the spec's Deploy Paralelo): 6 hosts x 4 steps x 500 ms
# concurrently: ~2 s, not 12 s.
add_test(NAME example.parallel_deployment COMMAND ${_ex_run} ${_ex_dir}/parallel_deployment.sloth
  --err "\\] OK edge-a rolled out at " --err "\\] OK store-a rolled out at "
  --err "\\] totals: 6 ok, 0 failed$"
  --out "^parallel_rollout +rollout_release +success +2\\.\\d\\ds +Rollout completed$"
  --min 1.9 --max 3.5)

set_tests_properties(example.hello example.waitgroup example.timeout example.parallel_deployment
  PROPERTIES LABELS examples TIMEOUT 60)

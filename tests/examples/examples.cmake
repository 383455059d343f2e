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

# file_pool.sloth (the spec's Exemplo 1): 5 documents on a pool of 5 workers,
# 1 s each, in parallel: ~1 s; the pool tasks log with their pool and task id.
add_test(NAME example.file_pool COMMAND ${_ex_run} ${_ex_dir}/file_pool.sloth
  --err "\\[converter [0-9a-f]+-[0-9]+ g[0-9]+\\] converting report\\.md$"
  --err "\\] documents converted: 5$"
  --out "^file_pool +convert_documents +success +1\\.0\\ds"
  --min 0.95 --max 2.0)

# worker_pool.sloth (the spec's worker-pool example): 50 jobs of 100-300 ms on
# 5 workers; the submit loop waits for room (backpressure), all 50 complete.
add_test(NAME example.worker_pool COMMAND ${_ex_run} ${_ex_dir}/worker_pool.sloth
  --err "\\] completed: 50$" --err "\\] failed: 0$" --err "\\] workers: 5$"
  --out "^worker_pool_batch +crunch_batch +success +2\\.\\d\\ds +batch processed$"
  --min 1.9 --max 4.0)

set_tests_properties(example.hello example.waitgroup example.timeout example.parallel_deployment
  example.file_pool example.worker_pool
  PROPERTIES LABELS examples TIMEOUT 60)

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

# channels.lua: 9 jobs of 50 ms through 3 workers on channels: ~150 ms.
add_test(NAME example.channels COMMAND ${_ex_run} ${_ex_dir}/channels.lua
  --out "^9 results, sum of squares 285$" --min 0.14 --max 1.5)

# channel_pool.lua: 20,000 numbers through 4 pool tasks and back, on channels.
add_test(NAME example.channel_pool COMMAND ${_ex_run} ${_ex_dir}/channel_pool.lua
  --out "^4 pool tasks took 20000 numbers$"
  --out "^20000 results; the longest: 17647 takes 278 steps$" --max 5.0)

# fleet_channel.lua: 6 tasks of 100 ms, 2 at once under a semaphore, progress on a
# channel (embedded here; on the fleet: integration.fleet_objects_example).
add_test(NAME example.fleet_channel COMMAND ${_ex_run} ${_ex_dir}/fleet_channel.lua
  --out "^6 files, 21000 bytes, at most 2 downloading at once$" --min 0.29 --max 2.0)

# select.lua: two sources for 300 ms (after), then a default and a select_timeout.
add_test(NAME example.select COMMAND ${_ex_run} ${_ex_dir}/select.lua
  --out "^in 300 ms: 1[3-5] from fast, [45] from slow$"
  --out "^nothing ready: default ran$" --out "^false\ttimeout$" --min 0.34 --max 2.0)

# context.lua: an errgroup whose second fetch fails at 100 ms and cancels the third.
add_test(NAME example.context COMMAND ${_ex_run} ${_ex_dir}/context.lua
  --out "^users: done$" --out "^invoices: stopped \\(context canceled\\)$"
  --out "^group:\tfalse\torders: upstream answered 503$" --not-out "^invoices: done$"
  --out "^slow:\tcontext deadline exceeded$" --min 0.14 --max 1.5)

# pipeline.lua: 20 values through 4 workers of 10 ms, fanned out to 2 and in again.
add_test(NAME example.pipeline COMMAND ${_ex_run} ${_ex_dir}/pipeline.lua
  --out "^sum of squares 1..20 = 2870, 10 odd, 0 stage errors$" --max 1.5)

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

# mutex.lua: 50 goroutines deposit through a Mutex with a sleep inside the
# critical section: none is lost (50 x ~1 ms, one at a time).
add_test(NAME example.mutex COMMAND ${_ex_run} ${_ex_dir}/mutex.lua
  --out "^balance: 500 \\(50 deposits of 10\\)$" --out "^Mutex\\(unlocked\\)$"
  --min 0.05 --max 2.0)

# semaphore.lua: 12 downloads of 100 ms through a Semaphore of 3: 4 waves.
add_test(NAME example.semaphore COMMAND ${_ex_run} ${_ex_dir}/semaphore.lua
  --out "^12 downloads, at most 3 at once, in \\d+\\.\\d s$" --out "^Semaphore\\(3/3\\)$"
  --min 0.39 --max 1.5)

set_tests_properties(example.hello example.waitgroup example.timeout example.parallel_deployment
  example.file_pool example.worker_pool example.mutex example.semaphore
  PROPERTIES LABELS examples TIMEOUT 60)

# Examples of the http and exec modules (issue 5); the HTTP ones run against
# tests/helpers/http_server.py, started by run_example.py --server.
# release.lua: the README's task file, run as the README says: ~200 ms.
add_test(NAME example.release COMMAND ${_ex_run} ${_ex_dir}/release.lua
  --workflow release --param env=prod
  --err "\\] deploy got ok for prod$" --err "workflow 'release' succeeded"
  --out "^release +deploy +success +\\d+ms +deployed$" --min 0.19 --max 1.5)

# deploy.lua: 4 targets x 5 exec steps (~0.7 s each) at once: ~0.7 s, not 2.8 s
# (--max 2.0 bounds it; the task's own duration may show as 1.xs on a loaded
# machine).
add_test(NAME example.deploy COMMAND ${_ex_run} ${_ex_dir}/deploy.lua
  --err "\\] web-01: verified 'app v2\\.0\\.0 for web-01'$" --err "\\] db-01: verified 'app v2\\.0\\.0 for db-01'$"
  --err "\\] 4/4 targets deployed$"
  --out "^deploy +deploy_release +success +(\\d+ms|1\\.\\d+s) +4/4 targets on v2\\.0\\.0$"
  --min 0.65 --max 2.0)
# ...and one target failing: only that one, the task fails.
add_test(NAME example.deploy_one_fails COMMAND ${_ex_run} ${_ex_dir}/deploy.lua
  --param fail=db-01 --param version=v2.1.0 --code 1
  --err "\\] db-01: restart failed \\(exit 1\\): service did not come up$"
  --err "\\] web-03: verified 'app v2\\.1\\.0 for web-03'$" --err "\\] 3/4 targets deployed$"
  --out "^deploy +deploy_release +failed +(\\d+ms|1\\.\\d+s) +3/4 targets on v2\\.1\\.0$" --max 2.0)

# parallel_health_check.sloth (the spec's Health Check Paralelo): five services,
# each answering after 300 ms: one refuses connections, one answers 500. Exactly
# three are healthy, and the checks run at once (~0.3 s, not 1.5 s).
add_test(NAME example.parallel_health_check COMMAND ${_ex_run} ${_ex_dir}/parallel_health_check.sloth
  "--server=--ports 4 --status 3=500 --health-delay 300"
  "--param=ports={port1},{port2},{port3},{refused},{port4}" --code 1
  --err "\\] ✅ API Gateway: healthy \\(\\d+\\.\\d\\dms\\)$"
  --err "\\] ✅ Auth Service: healthy \\(\\d+\\.\\d\\dms\\)$"
  --err "\\] ❌ Database Service: unhealthy - HTTP 500$"
  --err "\\] ❌ Cache Service: unhealthy - GET http://localhost:\\d+/health failed: .*[Cc]onnection refused"
  --err "\\] ✅ Queue Service: healthy \\(\\d+\\.\\d\\dms\\)$"
  --err "\\] 📊 Summary: 3 healthy, 2 unhealthy$"
  --not-err "✅ Database" --not-err "✅ Cache"
  --out "^parallel_health_check +check_services_health +failed +\\d+ms +Health check completed$"
  --min 0.29 --max 1.0)
add_test(NAME example.parallel_health_check_all_up COMMAND ${_ex_run} ${_ex_dir}/parallel_health_check.sloth
  "--server=--ports 5 --health-delay 300" "--param=ports={port1},{port2},{port3},{port4},{port5}"
  --err "\\] 📊 Summary: 5 healthy, 0 unhealthy$" --not-err "❌"
  --out "^parallel_health_check +check_services_health +success" --min 0.29 --max 1.0)

# async_fetch.sloth (the spec's Exemplo 2): three APIs of 300 ms each through
# async/await_all (~0.3 s); with the second one down, await_all reports it as
# success == false with an error naming its URL.
add_test(NAME example.async_fetch COMMAND ${_ex_run} ${_ex_dir}/async_fetch.sloth
  "--server=--ports 1" "--param=api1=http://127.0.0.1:{port1}/delay/300"
  "--param=api2=http://127.0.0.1:{port1}/delay/300" "--param=api3=http://127.0.0.1:{port1}/delay/300"
  --err "\\] API 1: HTTP 200, 9 bytes$" --err "\\] API 3: HTTP 200, 9 bytes$" --not-err "falhou"
  --out "^async_fetch +fetch_data +success +\\d+ms +fetched 3 of 3 APIs$" --min 0.29 --max 0.9)
add_test(NAME example.async_fetch_one_down COMMAND ${_ex_run} ${_ex_dir}/async_fetch.sloth
  "--server=--ports 1" "--param=api1=http://127.0.0.1:{port1}/data/one"
  "--param=api2=http://127.0.0.1:{refused}/data/two" "--param=api3=http://127.0.0.1:{port1}/data/three"
  --code 1
  --err "\\] API 2 falhou: GET http://127\\.0\\.0\\.1:\\d+/data/two failed: .*[Cc]onnection refused\\)?$"
  --err "\\] API 1: HTTP 200" --err "\\] API 3: HTTP 200" --not-err "API [13] falhou"
  --out "^async_fetch +fetch_data +failed +\\d+ms +fetched 2 of 3 APIs$")

set_tests_properties(example.release example.deploy example.deploy_one_fails example.parallel_health_check
  example.parallel_health_check_all_up example.async_fetch example.async_fetch_one_down
  PROPERTIES LABELS examples TIMEOUT 60)

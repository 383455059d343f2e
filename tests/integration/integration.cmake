# Integration tests against the loopback services of tests/services.sh (real
# Kafka and Redis). They read MUTIRAO_TEST_KAFKA_BROKERS and
# MUTIRAO_TEST_REDIS_URL from build-services/env.sh (scripts/test.sh sources
# it); without them a test is skipped (exit 77), or fails when CI is set.
# Label: integration.

add_executable(integration-smoke ${CMAKE_CURRENT_LIST_DIR}/smoke.c)
target_link_libraries(integration-smoke PRIVATE PkgConfig::RDKAFKA PkgConfig::HIREDIS)
add_test(NAME integration.services_smoke COMMAND integration-smoke)
set_tests_properties(integration.services_smoke PROPERTIES
  LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)

# The fleet end to end (fleet_test.py): mutirao run --fleet, mutirao-worker
# processes, the C producer library; one case per test. Serial: they start
# worker processes and measure times.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mutirao-worker)
  add_executable(kafka-replay ${CMAKE_CURRENT_LIST_DIR}/kafka_replay.c)
  target_link_libraries(kafka-replay PRIVATE PkgConfig::RDKAFKA)
  add_executable(two-clients ${CMAKE_CURRENT_LIST_DIR}/two_clients.c)
  target_link_libraries(two-clients PRIVATE libmutirao_so PkgConfig::MSGPACK)
  add_executable(kafka-put ${CMAKE_CURRENT_LIST_DIR}/kafka_put.c)
  target_link_libraries(kafka-put PRIVATE PkgConfig::RDKAFKA)
  set(_fleet_cases examples await_wg two_workers sigkill errors libmutirao local_objects semantics two_clients lingering os_exit retention large_values rebalance_busy
    poison redelivered newer_envelope dlq revoked timeout deadline memory retries retries_sigkill
    redis_restart_aof redis_restart_nopersist notify_dropped notify_gone no_worker_hint reconcile_bounded
    sigterm sigint_twice sandbox sandbox_secrets signed hostile signed_results
    crafted_bytecode foreign_pending layout nested_wg)
  # the stock lua5.4 cannot load a sanitizer build of goroutine_fleet.so
  if(NOT MUTIRAO_SANITIZE)
    list(APPEND _fleet_cases stock_lua)
  endif()
  foreach(_case ${_fleet_cases})
    add_test(NAME integration.fleet_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/fleet_test.py
        ${CMAKE_BINARY_DIR}/bin ${CMAKE_SOURCE_DIR}/examples ${_case})
    set_tests_properties(integration.fleet_${_case} PROPERTIES
      LABELS "integration;fleet" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()

  # Channels, semaphores and AtomicInts captured by fleet tasks, with two
  # workers (fleet_objects_test.py), one of them killed in `sigkill`.
  foreach(_case channels sync sigkill hostile example cut)
    add_test(NAME integration.fleet_objects_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/fleet_objects_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(integration.fleet_objects_${_case} PROPERTIES
      LABELS "integration;fleet" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()
  find_program(MUTIRAO_VALGRIND NAMES valgrind)
  if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
    add_test(NAME integration.fleet_objects_valgrind
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/fleet_objects_test.py
        ${CMAKE_BINARY_DIR}/bin valgrind)
    set_tests_properties(integration.fleet_objects_valgrind PROPERTIES
      LABELS "integration;fleet;valgrind" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
      ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
  endif()

  # Redis Cluster (redis_cluster_test.py): a local 3-master cluster of
  # redis-server processes the test starts on free loopback ports and stops
  # (redis_cluster.py); the shared services are not used.
  foreach(_case slots node_restart auth tls py_client)
    add_test(NAME integration.redis_cluster_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/redis_cluster_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(integration.redis_cluster_${_case} PROPERTIES
      LABELS "integration;fleet;cluster" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()

  # The fleet on Redis Cluster (fleet_cluster_test.py): fleet_test.py's
  # cases with Redis being a fresh local 3-master cluster of the test's own
  # (redis+cluster://, the fleet's keys hash-tagged), Kafka the shared one;
  # plus `layout` (every key tagged, the tags on the masters serving them).
  # Left out (the file says why): the cases with a private redis-server,
  # and valgrind.
  set(_fleet_cluster_cases examples await_wg two_workers sigkill errors libmutirao semantics
    two_clients lingering os_exit retention large_values rebalance_busy poison redelivered
    newer_envelope dlq revoked timeout deadline memory retries retries_sigkill sigterm
    sigint_twice sandbox sandbox_secrets signed hostile signed_results crafted_bytecode
    foreign_pending layout nested_wg
    # only here (they kill or restart the cluster's masters, or their point is
    # the tagged layout's steps across slots)
    master_restart worker_sigkill_nested
    # fleet_objects_test.py's
    objects_channels objects_sync)
  if(NOT MUTIRAO_SANITIZE)
    list(APPEND _fleet_cluster_cases stock_lua)
  else()
    # a sanitizer build runs the cases that reach the tagged layout's own
    # code (the split calls, the outbox, the ASK and replay answers,
    # retries, dead letters, counters), to keep CI well inside its time
    set(_fleet_cluster_cases layout await_wg nested_wg sigkill rebalance_busy poison
      redelivered dlq retries signed_results)
  endif()
  foreach(_case ${_fleet_cluster_cases})
    add_test(NAME integration.fleet_cluster_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/fleet_cluster_test.py
        ${CMAKE_BINARY_DIR}/bin ${CMAKE_SOURCE_DIR}/examples ${_case})
    set_tests_properties(integration.fleet_cluster_${_case} PROPERTIES
      LABELS "integration;fleet;cluster" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()

  # TLS and authentication (tls_test.py): a private redis-server with only a
  # TLS port and an ACL user, a private Kafka broker with a SASL_SSL listener
  # (SCRAM and PLAIN users), certificates made with the openssl command; the
  # fleet path over each, and a wrong password or an untrusted CA failing.
  foreach(_case redis kafka)
    add_test(NAME integration.tls_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/tls_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(integration.tls_${_case} PROPERTIES
      LABELS "integration;fleet;tls" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()

  # examples/file_pool.sloth on the fleet with `mutirao run --fleet` and its
  # worker under valgrind: 0 errors (invalid reads or writes; leaks are not
  # counted). Normal builds only: valgrind cannot run sanitized binaries.
  find_program(MUTIRAO_VALGRIND NAMES valgrind)
  if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
    add_test(NAME integration.fleet_valgrind
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/fleet_test.py
        ${CMAKE_BINARY_DIR}/bin ${CMAKE_SOURCE_DIR}/examples valgrind)
    set_tests_properties(integration.fleet_valgrind PROPERTIES
      LABELS "integration;fleet;valgrind" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
      ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
  endif()
endif()

# A worker's Prometheus endpoint (metrics_test.py): the counts after tasks
# that succeed, fail, time out and retry, `promtool check metrics` on the
# text (scripts/deps.sh installs promtool), and requests meant to hurt it
# (garbage, oversized headers, slow clients, 200 at once) while tasks run;
# the same under valgrind when it is there.
if(Python3_Interpreter_FOUND AND TARGET mutirao-worker)
  set(_metrics_cases values dead_letter attack)
  find_program(MUTIRAO_VALGRIND NAMES valgrind)
  if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
    list(APPEND _metrics_cases valgrind)
  endif()
  foreach(_case ${_metrics_cases})
    add_test(NAME integration.metrics_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/metrics_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(integration.metrics_${_case} PROPERTIES
      LABELS "integration;fleet;metrics" TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
      ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
  endforeach()
endif()

# The worker's Redis calls in both key layouts (worker_keys_test.py): a
# redis-server and a 3-master cluster of the test's own.
if(Python3_Interpreter_FOUND AND TARGET mutirao-worker)
  add_executable(worker-keys-check ${CMAKE_CURRENT_LIST_DIR}/worker_keys.c
    ${PROJECT_SOURCE_DIR}/worker/deliveries.c ${PROJECT_SOURCE_DIR}/worker/outbox.c
    ${PROJECT_SOURCE_DIR}/worker/wlog.c)
  target_include_directories(worker-keys-check PRIVATE ${PROJECT_SOURCE_DIR}/worker)
  target_link_libraries(worker-keys-check PRIVATE mutirao_runner mutirao_fleet mutirao_runtime
    PkgConfig::LUA)
  foreach(_case flat cluster)
    add_test(NAME integration.worker_keys_${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/worker_keys_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(integration.worker_keys_${_case} PROPERTIES
      LABELS "integration;fleet;cluster" TIMEOUT 120 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()
endif()

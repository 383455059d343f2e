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

# integration_cases(PREFIX SCRIPT CASES case... LABELS label... [EXAMPLES]
#                   [TIMEOUT s] [ENVIRONMENT var=value]): one test
# integration.PREFIXcase per case, running `SCRIPT BINDIR [EXAMPLESDIR] case`
# (SCRIPT: a Python driver in this folder; EXAMPLES: the examples folder
# given too) serially, skipped on exit 77; TIMEOUT 240 unless given. Called
# from this file (CMAKE_CURRENT_LIST_DIR: the caller's folder).
function(integration_cases prefix script)
  cmake_parse_arguments(PARSE_ARGV 2 _ic "EXAMPLES" "TIMEOUT;ENVIRONMENT" "CASES;LABELS")
  if(NOT _ic_TIMEOUT)
    set(_ic_TIMEOUT 240)
  endif()
  set(_examples)
  if(_ic_EXAMPLES)
    set(_examples ${CMAKE_SOURCE_DIR}/examples)
  endif()
  foreach(_case ${_ic_CASES})
    set(_name integration.${prefix}${_case})
    add_test(NAME ${_name}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/${script}
        ${CMAKE_BINARY_DIR}/bin ${_examples} ${_case})
    set_tests_properties(${_name} PROPERTIES
      LABELS "${_ic_LABELS}" TIMEOUT ${_ic_TIMEOUT} SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
    if(NOT "${_ic_ENVIRONMENT}" STREQUAL "")
      set_tests_properties(${_name} PROPERTIES ENVIRONMENT "${_ic_ENVIRONMENT}")
    endif()
  endforeach()
endfunction()

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
  set(_fleet_cases examples await_wg two_workers sigkill stop_first_rebalance errors libmutirao local_objects semantics two_clients lingering os_exit retention large_values rebalance_busy
    poison redelivered newer_envelope dlq revoked timeout deadline memory retries retries_sigkill
    redis_restart_aof redis_restart_nopersist notify_dropped notify_gone no_worker_hint reconcile_bounded
    sigterm sigint_twice sandbox sandbox_secrets signed hostile signed_results
    crafted_bytecode foreign_pending layout nested_wg)
  # the stock lua5.4 cannot load a sanitizer build of goroutine_fleet.so
  if(NOT MUTIRAO_SANITIZE)
    list(APPEND _fleet_cases stock_lua)
  endif()
  integration_cases(fleet_ fleet_test.py EXAMPLES CASES ${_fleet_cases}
    LABELS integration fleet)

  # Channels, semaphores and AtomicInts captured by fleet tasks, with two
  # workers (fleet_objects_test.py), one of them killed in `sigkill`.
  integration_cases(fleet_objects_ fleet_objects_test.py
    CASES channels sync sigkill hostile example cut LABELS integration fleet)
  find_program(MUTIRAO_VALGRIND NAMES valgrind)
  if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
    integration_cases(fleet_objects_ fleet_objects_test.py CASES valgrind
      LABELS integration fleet valgrind ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
  endif()

  # Redis Cluster (redis_cluster_test.py): a local 3-master cluster of
  # redis-server processes the test starts on free loopback ports and stops
  # (redis_cluster.py); the shared services are not used.
  integration_cases(redis_cluster_ redis_cluster_test.py
    CASES slots node_restart auth tls py_client LABELS integration fleet cluster)

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
  integration_cases(fleet_cluster_ fleet_cluster_test.py EXAMPLES CASES ${_fleet_cluster_cases}
    LABELS integration fleet cluster)

  # TLS and authentication (tls_test.py): a private redis-server with only a
  # TLS port and an ACL user, a private Kafka broker with a SASL_SSL listener
  # (SCRAM and PLAIN users), certificates made with the openssl command; the
  # fleet path over each, and a wrong password or an untrusted CA failing.
  integration_cases(tls_ tls_test.py CASES redis kafka LABELS integration fleet tls)

  # examples/file_pool.sloth on the fleet with `mutirao run --fleet` and its
  # worker under valgrind: 0 errors (invalid reads or writes; leaks are not
  # counted). Normal builds only: valgrind cannot run sanitized binaries.
  find_program(MUTIRAO_VALGRIND NAMES valgrind)
  if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
    integration_cases(fleet_ fleet_test.py EXAMPLES CASES valgrind
      LABELS integration fleet valgrind ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
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
  integration_cases(metrics_ metrics_test.py CASES ${_metrics_cases}
    LABELS integration fleet metrics ENVIRONMENT "MUTIRAO_VALGRIND=${MUTIRAO_VALGRIND}")
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
  integration_cases(worker_keys_ worker_keys_test.py CASES flat cluster
    LABELS integration fleet cluster TIMEOUT 120)
endif()

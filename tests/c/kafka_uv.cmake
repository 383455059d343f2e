# Tests of shared/kafka/kafka_uv.c and shared/kafka/kafka_tracker.c. Included by
# tests/CMakeLists.txt. kafka.tracker is a pure unit test (label c); the
# others start librdkafka's mock cluster on loopback (label integration).
# kafka.real runs against MUTIRAO_TEST_KAFKA_BROKERS and is skipped without it.

add_executable(test-kafka-uv ${CMAKE_CURRENT_LIST_DIR}/test-kafka-uv.c)
target_link_libraries(test-kafka-uv PRIVATE mutirao_kafka Threads::Threads)

add_test(NAME kafka.tracker COMMAND test-kafka-uv tracker)
set_tests_properties(kafka.tracker PROPERTIES LABELS c TIMEOUT 120)

foreach(_t produce ensure consume commit pause pause_rebalance hold broker_down close_inflight real)
  add_test(NAME kafka.${_t} COMMAND test-kafka-uv ${_t})
  set_tests_properties(kafka.${_t} PROPERTIES LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)
endforeach()

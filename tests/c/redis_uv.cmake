# Integration tests of the async Redis client (shared/redis/redis_uv.c) against
# redis-server processes the test starts on free loopback ports. Label:
# integration. Skipped (exit 77) when /usr/bin/redis-server is missing.
# Throughput: bin/test-redis-uv bench [N].

add_executable(test-redis-uv ${CMAKE_CURRENT_LIST_DIR}/test-redis-uv.c)
target_link_libraries(test-redis-uv PRIVATE mutirao_redis)
add_test(NAME redis_uv COMMAND test-redis-uv)
set_tests_properties(redis_uv PROPERTIES LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)

# Unit tests of the Redis Cluster helpers (shared/redis/redis_slot.h): CRC16
# vectors, hash tags, routing keys, MOVED/ASK and CLUSTER SLOTS parsing,
# hostile replies. Label: c. No server. The same program's `live` mode runs
# against a local 3-master cluster: integration.redis_cluster
# (tests/integration/integration.cmake).
add_executable(test-redis-slot ${CMAKE_CURRENT_LIST_DIR}/test-redis-slot.c)
target_link_libraries(test-redis-slot PRIVATE mutirao_redis)
add_test(NAME c.test-redis-slot COMMAND test-redis-slot)
set_tests_properties(c.test-redis-slot PROPERTIES LABELS c TIMEOUT 60)

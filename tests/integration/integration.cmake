# Integration tests against the loopback services of tests/services.sh (real
# Kafka and Redis). They read MUTIRAO_TEST_KAFKA_BROKERS and
# MUTIRAO_TEST_REDIS_URL from build-services/env.sh (scripts/test.sh sources
# it); without them a test is skipped (exit 77), or fails when CI is set.
# Label: integration.
pkg_check_modules(RDKAFKA QUIET IMPORTED_TARGET rdkafka)
pkg_check_modules(HIREDIS QUIET IMPORTED_TARGET hiredis)
if(NOT RDKAFKA_FOUND OR NOT HIREDIS_FOUND)
  message(STATUS "librdkafka or hiredis missing: integration tests not registered")
  return()
endif()

add_executable(integration-smoke ${CMAKE_CURRENT_LIST_DIR}/smoke.c)
target_link_libraries(integration-smoke PRIVATE PkgConfig::RDKAFKA PkgConfig::HIREDIS)
add_test(NAME integration.services_smoke COMMAND integration-smoke)
set_tests_properties(integration.services_smoke PROPERTIES
  LABELS integration TIMEOUT 120 SKIP_RETURN_CODE 77)

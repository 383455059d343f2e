# The operations commands (`mutirao pools`, `stats`, `task`, `workers`)
# against a real fleet, and scripts/fleet-up.sh / fleet-down.sh
# (tests/ops/ops_test.py). `commands` uses the shared Kafka of
# tests/services.sh and a redis-server of its own; `fleet_up` starts a
# whole fleet of its own. Skipped (77) without them, failed when CI is set.
# Label: integration;fleet;ops.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mutirao-worker AND TARGET mutirao)
  foreach(_case commands fleet_up)
    add_test(NAME ops.${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/ops_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(ops.${_case} PROPERTIES
      LABELS "integration;fleet;ops" TIMEOUT 180 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()
endif()

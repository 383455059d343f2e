# `mutirao dashboard` (producer/dashboard.c) against the real Kafka and Redis
# of tests/services.sh with real workers (tests/dashboard/dashboard_test.py):
# `api` drives its JSON API with urllib (`cluster`: the same on a local Redis
# Cluster), `chromium` its page in a headless
# Chromium over the DevTools protocol (python3-websocket). Skipped (77)
# without the services or Chromium, failed when CI is set.
# Label: integration;fleet;dashboard.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mutirao-worker AND TARGET mutirao)
  foreach(_case api cluster chromium)
    add_test(NAME dashboard.${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/dashboard_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(dashboard.${_case} PROPERTIES
      LABELS "integration;fleet;dashboard" TIMEOUT 180 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  endforeach()
endif()

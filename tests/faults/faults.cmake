# The fault-injection suite (tests/faults/faults.py): the fleet against a
# private Kafka and redis-server that each scenario starts, breaks and
# restarts (never the shared services of tests/services.sh). One test per
# scenario; label faults. Normal builds only: the scenarios measure
# recovery times and restart services, which sanitizer builds would only
# slow down. docs/faults.md lists the scenarios and their figures.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT Python3_Interpreter_FOUND OR NOT TARGET mutirao-worker OR MUTIRAO_SANITIZE)
  return()
endif()

# faults-poison: corrupt-bytecode task envelopes straight to a pool's topic
add_executable(faults-poison ${CMAKE_CURRENT_LIST_DIR}/poison.c)
target_link_libraries(faults-poison PRIVATE mutirao_shared PkgConfig::LUA PkgConfig::RDKAFKA)
# faults-topic-count: the messages a topic holds (sum of high watermarks)
add_executable(faults-topic-count ${CMAKE_CURRENT_LIST_DIR}/topic_count.c)
target_link_libraries(faults-topic-count PRIVATE PkgConfig::RDKAFKA)

# Every scenario of docs/faults.md; one test each.
set(MUTIRAO_FAULT_SCENARIOS sigkill sigterm redis_restart kafka_submit kafka_consume poison_os_exit
  poison_timeout poison_memory poison_kill3 poison_bytecode)

foreach(_s ${MUTIRAO_FAULT_SCENARIOS})
  add_test(NAME faults.${_s}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/faults.py
      ${CMAKE_BINARY_DIR}/bin ${CMAKE_BINARY_DIR}/faults/${_s} ${_s})
  set_tests_properties(faults.${_s} PROPERTIES
    LABELS faults TIMEOUT 480 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
endforeach()

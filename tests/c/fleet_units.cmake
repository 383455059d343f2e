# C unit tests of the fleet's building blocks: in shared/, the task
# envelope / result record (test-envelope) and the configuration
# (test-config). Label: c. No services needed. Run them in an ASan build
# (-DMUTIRAO_SANITIZE=address) too: LeakSanitizer fails a test on any leak.

foreach(_t test-envelope test-config)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/${_t}.c)
  target_link_libraries(${_t} PRIVATE mutirao_shared)
  add_test(NAME c.${_t} COMMAND ${_t})
  set_tests_properties(c.${_t} PROPERTIES LABELS c TIMEOUT 60)
endforeach()
# test-config also checks the example file config/mutirao.conf.
target_compile_definitions(test-config PRIVATE MUTIRAO_SOURCE_DIR="${CMAKE_SOURCE_DIR}")

# The producer's handling of 'W' notifications (lua/fleet/fleet_wg.c), in a
# Lua state of its own. No services needed.
add_executable(test-fleet-wg ${CMAKE_CURRENT_LIST_DIR}/test-fleet-wg.c)
target_link_libraries(test-fleet-wg PRIVATE mutirao_fleet mutirao_runtime PkgConfig::LUA)
add_test(NAME c.test-fleet-wg COMMAND test-fleet-wg)
set_tests_properties(c.test-fleet-wg PROPERTIES LABELS c TIMEOUT 60)

# Signed task envelopes (shared/wire/sign.c): keys, signatures, refusals.
# No services needed; its keys live in a temporary directory.
add_executable(test-sign ${CMAKE_CURRENT_LIST_DIR}/test-sign.c)
target_link_libraries(test-sign PRIVATE mutirao_sign mutirao_wire)
add_test(NAME c.test-sign COMMAND test-sign)
set_tests_properties(c.test-sign PROPERTIES LABELS c TIMEOUT 60)
# ...and under valgrind: no invalid access or leak in the signature checks
# of damaged and random messages (random_damage) or the key handling.
find_program(MUTIRAO_VALGRIND NAMES valgrind)
if(MUTIRAO_VALGRIND AND NOT MUTIRAO_SANITIZE)
  add_test(NAME valgrind.test-sign
    COMMAND ${MUTIRAO_VALGRIND} --error-exitcode=9 -q --leak-check=full
      --errors-for-leak-kinds=all $<TARGET_FILE:test-sign>)
  set_tests_properties(valgrind.test-sign PROPERTIES LABELS "c;valgrind" TIMEOUT 120)
endif()

# The bitmap keys the workers and producers compute for the scripts
# (shared/wire/fleet_keys.c), checked against the scripts' own Lua.
add_executable(test-fleet-keys ${CMAKE_CURRENT_LIST_DIR}/test-fleet-keys.c)
target_link_libraries(test-fleet-keys PRIVATE mutirao_wire PkgConfig::LUA)
add_test(NAME c.test-fleet-keys COMMAND test-fleet-keys)
set_tests_properties(c.test-fleet-keys PROPERTIES LABELS c TIMEOUT 60)

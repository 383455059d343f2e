# The producer library (libmutirao) through its public header: the API test
# (label tsan: the TSan build runs it), the example program, and a build of
# the example by pkg-config alone, as an outside project would do it.
if(TARGET libmutirao_so)
  add_executable(test-libmutirao ${CMAKE_CURRENT_LIST_DIR}/test-libmutirao.c)
  target_link_libraries(test-libmutirao PRIVATE libmutirao_so PkgConfig::MSGPACK Threads::Threads)
  add_test(NAME c.libmutirao COMMAND test-libmutirao)
  set_tests_properties(c.libmutirao PROPERTIES LABELS "c;tsan;libmutirao" TIMEOUT 300
    ENVIRONMENT "MUTIRAO_PROCS=4;TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")

  # the same test against the static library
  add_executable(test-libmutirao-static ${CMAKE_CURRENT_LIST_DIR}/test-libmutirao.c)
  target_link_libraries(test-libmutirao-static PRIVATE libmutirao_static PkgConfig::MSGPACK)
  add_test(NAME c.libmutirao_static COMMAND test-libmutirao-static)
  set_tests_properties(c.libmutirao_static PROPERTIES LABELS "c;libmutirao" TIMEOUT 300
    ENVIRONMENT "MUTIRAO_PROCS=2")

  add_test(NAME c.libmutirao_example COMMAND producer-example)
  set_tests_properties(c.libmutirao_example PROPERTIES LABELS "c;libmutirao" TIMEOUT 60
    PASS_REGULAR_EXPRESSION "doubled 1..10: total 110\nsum: ok \\[{[^\n]*\"sum\"=>5050[^\n]*}, \"sum done\"\\]\nfailing task: task:1: no such host: db-099\nstats: workers=4 submitted=12 completed=11 failed=1 active=0 queued=0")

  # pkg-config alone (no sanitizer flags: only in a plain build)
  if(NOT MUTIRAO_SANITIZE)
    add_test(NAME c.libmutirao_pkgconfig
      COMMAND sh -c "set -e; export PKG_CONFIG_PATH='${CMAKE_BINARY_DIR}/lib/pkgconfig'; \
out='${CMAKE_CURRENT_BINARY_DIR}/producer-pc'; \
${CMAKE_C_COMPILER} -std=c11 -Wall -Wextra -Werror '${PROJECT_SOURCE_DIR}/examples/producer.c' \
  $(pkg-config --cflags --libs mutirao msgpack) -o \"$out\"; \
test \"$(pkg-config --modversion mutirao)\" = '${PROJECT_VERSION}'; \
LD_LIBRARY_PATH='${CMAKE_BINARY_DIR}/lib' \"$out\"")
    set_tests_properties(c.libmutirao_pkgconfig PROPERTIES LABELS "c;libmutirao" TIMEOUT 120
      PASS_REGULAR_EXPRESSION "doubled 1..10: total 110")
  endif()

  # A host program with functions and a global of its own named like the
  # library's internals (config_load, handle_new, port_post, ..., pools)
  # links against libmutirao.a and libmutirao.so and runs tasks. The link is
  # part of the test: the programs are built by a test (fixture), so that a
  # clash fails the test rather than the build.
  foreach(kind static shared)
    set(_lib libmutirao_static)
    if(kind STREQUAL "shared")
      set(_lib libmutirao_so)
    endif()
    add_executable(test-libmutirao-host-${kind} EXCLUDE_FROM_ALL
      ${CMAKE_CURRENT_LIST_DIR}/test-libmutirao-host.c ${CMAKE_CURRENT_LIST_DIR}/libmutirao-host-own.c)
    target_link_libraries(test-libmutirao-host-${kind} PRIVATE ${_lib})
    add_test(NAME c.libmutirao_host_${kind}_link
      COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --config $<CONFIG>
        --target test-libmutirao-host-${kind})
    set_tests_properties(c.libmutirao_host_${kind}_link PROPERTIES LABELS "c;libmutirao"
      TIMEOUT 300 FIXTURES_SETUP libmutirao_host_${kind} RESOURCE_LOCK mutirao_build_tree)
    add_test(NAME c.libmutirao_host_${kind} COMMAND test-libmutirao-host-${kind})
    set_tests_properties(c.libmutirao_host_${kind} PROPERTIES LABELS "c;libmutirao" TIMEOUT 120
      FIXTURES_REQUIRED libmutirao_host_${kind} ENVIRONMENT "MUTIRAO_PROCS=2"
      PASS_REGULAR_EXPRESSION "host: 8 tasks ok, own functions intact")
  endforeach()

  # the API (include/mutirao.h) and nothing else: exported by the .so,
  # global in the .a
  set(_nm "${CMAKE_NM}")
  if(NOT _nm)
    set(_nm nm)
  endif()
  add_test(NAME c.libmutirao_exports
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/libmutirao-exports.sh ${_nm}
      ${PROJECT_SOURCE_DIR}/include/mutirao.h $<TARGET_FILE:libmutirao_so>
      $<TARGET_FILE:libmutirao_static>)
  set_tests_properties(c.libmutirao_exports PROPERTIES LABELS "c;libmutirao")
endif()

# What `mutirao` draws on a real terminal, driven in tmux and read back with
# capture-pane (tests/terminal/terminal_test.py): `mutirao top` against a
# fleet (the shared Kafka of tests/services.sh, a redis-server of its own,
# a worker) and its errors; `mutirao run`'s progress lines (and none when
# stderr is a pipe or with --log-format json). Skipped (77) without tmux or the services,
# failed when CI is set. Label: terminal (top: also integration;fleet).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mutirao AND TARGET mutirao-worker)
  foreach(_case top top_errors progress progress_plain progress_misuse)
    add_test(NAME terminal.${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/terminal_test.py
        ${CMAKE_BINARY_DIR}/bin ${_case})
    set_tests_properties(terminal.${_case} PROPERTIES
      LABELS "terminal" TIMEOUT 120 SKIP_RETURN_CODE 77)
  endforeach()
  set_tests_properties(terminal.top PROPERTIES
    LABELS "terminal;integration;fleet" RUN_SERIAL TRUE)
endif()

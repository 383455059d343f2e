# libFuzzer targets for the codec's decoder (fuzz-codec) and a worker's
# whole message path (fuzz-message): only with clang and
# -DMUTIRAO_FUZZ=ON (see tests/fuzz/run-fuzz.sh, which also turns on
# MUTIRAO_SANITIZE=address). The option itself is declared in
# shared/CMakeLists.txt, which instruments the codec for coverage.
if(MUTIRAO_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(fuzz-codec ${CMAKE_CURRENT_LIST_DIR}/fuzz-codec.c)
  target_compile_options(fuzz-codec PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz-codec PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz-codec PRIVATE mutirao_shared PkgConfig::LUA m)

  # a worker's whole message path: signature, envelope, payload
  add_executable(fuzz-message ${CMAKE_CURRENT_LIST_DIR}/fuzz-message.c)
  target_compile_options(fuzz-message PRIVATE -fsanitize=fuzzer)
  target_link_options(fuzz-message PRIVATE -fsanitize=fuzzer)
  target_link_libraries(fuzz-message PRIVATE mutirao_shared mutirao_sign PkgConfig::LUA m)

  add_executable(gen-corpus ${CMAKE_CURRENT_LIST_DIR}/gen-corpus.c)
  target_link_libraries(gen-corpus PRIVATE mutirao_shared PkgConfig::LUA m)
elseif(MUTIRAO_FUZZ)
  message(WARNING "MUTIRAO_FUZZ needs clang (CC=clang); fuzz-codec not built")
endif()

# The layering, checked by the compiler: a probe that includes a header of a
# higher layer with only a lower layer's include directories must not
# compile (WILL_FAIL), and one that includes a header the layer may use must
# (so a broken probe cannot pass for a refused include). The probes are
# built on demand by the tests, never by `all`. Label: layers.
set(_layer_probes
  # layer  header           may include?
  "core    scheduler.h      yes"
  "core    codec.h          yes"
  "core    pool.h           no"
  "core    taskbook.h       no"
  "core    fleet_pool.h     no"
  "core    goroutine.h      no"
  "core    http.h           no"
  "core    envelope.h       no"
  "pool    waitgroup.h      yes"
  "pool    envelope.h       yes"
  "pool    fleet_pool.h     no"
  "pool    redis_uv.h       no"
  "pool    kafka_uv.h       no"
  "pool    goroutine.h      no"
  "pool    http.h           no"
  "io      scheduler.h      yes"
  "io      pool.h           no"
  "io      goroutine.h      no"
  "module  pool.h           yes"
  "module  http.h           yes"
  "module  fleet_pool.h     no"
  "module  redis_uv.h       no"
  "fleet   taskbook.h       yes"
  "fleet   redis_uv.h       yes"
  "fleet   goroutine.h      no"
  "fleet   http.h           no"
  "base    list.h           yes"
  "base    decimal.h        yes"
  "base    codec.h          no"
  "base    scheduler.h      no"
  "codec   errors.h         yes"
  "wire    errors.h         yes"
  "core    list.h           yes"
  "codec   scheduler.h      no"
  "codec   envelope.h       no"
  "wire    codec.h          no")
foreach(_probe ${_layer_probes})
  string(REGEX REPLACE " +" ";" _probe "${_probe}")
  list(GET _probe 0 _layer)
  list(GET _probe 1 _header)
  list(GET _probe 2 _may)
  string(MAKE_C_IDENTIFIER "${_layer}_${_header}" _id)
  set(_src ${CMAKE_CURRENT_BINARY_DIR}/layer_probe_${_id}.c)
  file(WRITE ${_src} "#include \"${_header}\"\nint layer_probe_${_id};\n")
  add_library(layer_probe_${_id} OBJECT EXCLUDE_FROM_ALL ${_src})
  target_link_libraries(layer_probe_${_id} PRIVATE mutirao_${_layer})
  if(_may STREQUAL "yes")
    set(_name layers.${_layer}_includes_${_id})
  else()
    set(_name layers.${_layer}_cannot_include_${_id})
  endif()
  add_test(NAME ${_name}
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target layer_probe_${_id})
  set_tests_properties(${_name} PROPERTIES LABELS layers TIMEOUT 60)
  if(_may STREQUAL "no")
    set_tests_properties(${_name} PROPERTIES WILL_FAIL TRUE)
  endif()
endforeach()

# goroutine.so, for the stock lua5.4, needs only Lua, libuv and libcurl: no
# librdkafka, hiredis, libssl or libcrypto (the fleet is in goroutine_fleet.so).
add_test(NAME layers.goroutine_so_has_no_fleet
  COMMAND sh -c "readelf -d \"$1\" | grep NEEDED; ! readelf -d \"$1\" | grep -E 'NEEDED.*(rdkafka|hiredis|libssl|libcrypto)'"
    sh $<TARGET_FILE:goroutine_module>)
set_tests_properties(layers.goroutine_so_has_no_fleet PROPERTIES LABELS layers TIMEOUT 30)

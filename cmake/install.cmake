# cmake/install.cmake: what `cmake --install BUILD [--prefix P]` puts where.
#
#   P/bin/                    mutirao, mutirao-worker
#   P/lib/lua/5.4/            goroutine.so, http.so and exec.so (links to
#                             goroutine.so), goroutine_fleet.so: where the
#                             stock lua5.4 looks with P = /usr/local or /usr
#                             (MUTIRAO_LUA_CMOD_DIR sets another place)
#   P/LIBDIR/                 libmutirao.{so,a}, pkgconfig/mutirao.pc
#   P/include/                mutirao.h
#   P/share/mutirao/          mutirao.conf (the example configuration)
#   P/share/man/man1/         mutirao.1, mutirao-worker.1
#
# mutirao.pc is written when installing, not when configuring, so that its
# prefix is the one given to `cmake --install --prefix`. With
# MUTIRAO_LUA_MODULES_ONLY (the rockspec) only goroutine.so, http.so and
# exec.so are installed.
include(GNUInstallDirs)

set(MUTIRAO_LUA_CMOD_DIR "lib/lua/5.4" CACHE STRING
  "Where Lua C modules are installed (a relative path is under the install prefix)")

# MUTIRAO_LUA_IO_LINKS=OFF leaves out http.so and exec.so (the rockspec:
# a rock holds no symbolic links; it installs lua/rock/http.lua and exec.lua).
option(MUTIRAO_LUA_IO_LINKS "Install http.so and exec.so as links to goroutine.so" ON)

# goroutine.so and its two other names. http.so and exec.so must stay links
# to the same file: the dynamic loader then loads one object, so one
# scheduler per VM, whichever name a script requires first.
install(TARGETS goroutine_module LIBRARY DESTINATION ${MUTIRAO_LUA_CMOD_DIR})
if(MUTIRAO_LUA_IO_LINKS)
  install(FILES $<TARGET_FILE_DIR:goroutine_module>/http.so
    $<TARGET_FILE_DIR:goroutine_module>/exec.so DESTINATION ${MUTIRAO_LUA_CMOD_DIR})
endif()

if(MUTIRAO_LUA_MODULES_ONLY)
  return()
endif()

install(TARGETS goroutine_fleet_module LIBRARY DESTINATION ${MUTIRAO_LUA_CMOD_DIR})
install(TARGETS mutirao mutirao-worker RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# libmutirao, its header and its pkg-config file.
install(TARGETS libmutirao_static libmutirao_so
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/mutirao.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# producer/mutirao.pc.in -> mutirao.pc.install.in now (libdir and includedir
# as ${prefix}/..., the prefix left as @MUTIRAO_PC_PREFIX@), -> mutirao.pc
# at install time with the prefix of that install.
function(mutirao_pc_template out)
  set(PC_PREFIX "@MUTIRAO_PC_PREFIX@")
  foreach(_dir LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
      set(PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
    else()
      set(PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
    endif()
  endforeach()
  configure_file(${PROJECT_SOURCE_DIR}/producer/mutirao.pc.in ${out} @ONLY)
endfunction()
set(_pc_in ${CMAKE_BINARY_DIR}/mutirao.pc.install.in)
set(_pc_out ${CMAKE_BINARY_DIR}/mutirao.pc.install)
mutirao_pc_template(${_pc_in})
install(CODE "
  get_filename_component(MUTIRAO_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\" ABSOLUTE)
  configure_file(\"${_pc_in}\" \"${_pc_out}\" @ONLY)
")
install(FILES ${_pc_out} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig RENAME mutirao.pc)

# The example configuration: copy it to /etc/mutirao/mutirao.conf or point
# MUTIRAO_CONFIG at a copy (the commands look there; see its header).
install(FILES ${PROJECT_SOURCE_DIR}/config/mutirao.conf
  DESTINATION ${CMAKE_INSTALL_DATADIR}/mutirao)

install(FILES ${PROJECT_SOURCE_DIR}/docs/man/mutirao.1 ${PROJECT_SOURCE_DIR}/docs/man/mutirao-worker.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

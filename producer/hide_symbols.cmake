# producer/hide_symbols.cmake: a static library whose only global symbols are
# its public API.
#
#   mutirao_hidden_static_library(<target> OBJECTS <object>...
#                                 [KEEP <pattern>...] [DEPENDS <target>...])
#
# A plain archive of the objects carries as globals all the internal
# functions its files share (config_load, handle_new, port_post...): a program
# linking it that defines one of these names itself fails to link (multiple
# definition) or, worse, has the library call the program's function.
# Instead the objects are first linked into one relocatable object
# (`cc -r`: the references between them are resolved there, once), then
# objcopy turns into local symbols every defined symbol of hidden visibility
# (all that is not marked default, the project compiling with
# -fvisibility=hidden) and every one whose name matches no KEEP pattern
# (shell wildcards, e.g. "mutirao_*"). Undefined references (Lua, libuv,
# the sanitizer runtimes...) stay as they are. The archive holds that one
# object; the symbols made local remain in its symbol table for debuggers,
# but no other object can see or clash with them.
#
# OBJECTS are object files or $<TARGET_OBJECTS:tgt> expressions; the targets
# named in the latter are built first, DEPENDS adds other targets. The
# library is an ordinary STATIC target: link it, install it, set its
# OUTPUT_NAME and usage requirements as for any other.
function(mutirao_hidden_static_library name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "OBJECTS;KEEP;DEPENDS")
  if(NOT arg_OBJECTS)
    message(FATAL_ERROR "mutirao_hidden_static_library(${name}): no OBJECTS")
  endif()
  if(NOT CMAKE_OBJCOPY)
    message(FATAL_ERROR "mutirao_hidden_static_library(${name}): objcopy not found (binutils)")
  endif()

  set(deps ${arg_DEPENDS})
  foreach(obj IN LISTS arg_OBJECTS)
    string(REGEX MATCHALL "\\$<TARGET_OBJECTS:[^>]+>" genexes "${obj}")
    foreach(genex IN LISTS genexes)
      string(REGEX REPLACE "^\\$<TARGET_OBJECTS:(.+)>$" "\\1" tgt "${genex}")
      list(APPEND deps ${tgt})
    endforeach()
  endforeach()

  set(keep)
  if(arg_KEEP)
    list(APPEND keep --wildcard)
    foreach(pattern IN LISTS arg_KEEP)
      list(APPEND keep --keep-global-symbol=${pattern})
    endforeach()
  endif()

  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${name}.dir)
  set(linked ${dir}/${name}-linked.o)
  set(combined ${dir}/${name}.o)
  add_custom_command(OUTPUT ${combined}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${CMAKE_C_COMPILER} -r -nostdlib -o ${linked} ${arg_OBJECTS}
    COMMAND ${CMAKE_OBJCOPY} --localize-hidden ${keep} ${linked} ${combined}
    COMMAND ${CMAKE_COMMAND} -E remove ${linked}
    DEPENDS ${arg_OBJECTS} ${deps}
    COMMENT "Linking ${name}'s objects into one with only its API global"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_library(${name} STATIC ${combined})
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE C) # no source to tell
endfunction()

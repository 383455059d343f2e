# embed_lua.cmake: turns Lua sources into a C file of byte arrays (no xxd needed).
# Run at build time: cmake -DOUT=file.c -DNAMES="mod1|mod2" -DFILES="a.lua|b.lua"
#   [-DSYMBOL=embedded_lua] [-DHEADER=embedded.h] -P embed_lua.cmake
# The C file includes HEADER and defines `const embedded_chunk SYMBOL[]` (the
# struct of lua/runner/embedded.h, which HEADER declares), ended by an entry
# whose name is NULL; each chunk is named "@mutirao/<file name>". The writer:
# embed_write.cmake.
include(${CMAKE_CURRENT_LIST_DIR}/embed_write.cmake)
if(NOT SYMBOL)
  set(SYMBOL embedded_lua)
endif()
if(NOT HEADER)
  set(HEADER embedded.h)
endif()
string(REPLACE "|" ";" FILES "${FILES}")
string(REPLACE "|" ";" NAMES "${NAMES}")
set(_labels "")
set(_i 0)
foreach(_file ${FILES})
  list(GET NAMES ${_i} _name)
  get_filename_component(_base ${_file} NAME)
  list(APPEND _labels "\"${_name}\", \"@mutirao/${_base}\"")
  math(EXPR _i "${_i} + 1")
endforeach()
embed_write(OUT ${OUT} GENERATOR embed_lua.cmake HEADER ${HEADER}
  TABLE "const embedded_chunk ${SYMBOL}[]" ARRAY chunk_ END "0, 0, 0, 0"
  FILES ${FILES} LABELS ${_labels})

# embed_files.cmake: turns files (the dashboard's page, script and style)
# into a C file of byte arrays (no xxd needed). Run at build time:
#   cmake -DOUT=file.c -DFILES="a.html|b.js" -P embed_files.cmake
# The C file defines `const embedded_file embedded_files[]` (the struct of
# producer/embedded_files.h), ended by an entry whose name is NULL; each is
# named by its file name ("index.html"). The writer: embed_write.cmake.
include(${CMAKE_CURRENT_LIST_DIR}/embed_write.cmake)
string(REPLACE "|" ";" FILES "${FILES}")
set(_labels "")
foreach(_file ${FILES})
  get_filename_component(_base ${_file} NAME)
  list(APPEND _labels "\"${_base}\"")
endforeach()
embed_write(OUT ${OUT} GENERATOR embed_files.cmake HEADER embedded_files.h
  TABLE "const embedded_file embedded_files[]" ARRAY file_ END "0, 0, 0"
  FILES ${FILES} LABELS ${_labels})

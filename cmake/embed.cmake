# Helpers for the scripts that embed files into C sources at build time
# (console/embed.cmake, src/embed_openapi.cmake), with nothing but CMake.

# Sets out_var to the bytes of file as a C initializer list: "0x.., " per
# byte, 16 bytes a line, ending with a 0 that keeps an empty file legal C and
# leaves text NUL-terminated (lengths do not count it). len_var gets the size.
function(embed_c_bytes file out_var len_var)
  file(READ "${file}" hex HEX)
  file(SIZE "${file}" len)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
  string(REGEX REPLACE "(${line})" "\\1\n" hex "${hex}")
  set(${out_var} "${hex}0" PARENT_SCOPE)
  set(${len_var} "${len}" PARENT_SCOPE)
endfunction()

# Writes body to out only when it differs, so that an unchanged input
# relinks nothing.
function(embed_write_if_changed out body)
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT old STREQUAL body)
    file(WRITE "${out}" "${body}")
  endif()
endfunction()

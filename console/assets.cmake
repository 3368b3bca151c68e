# console_asset_files(OUT DIR): every file of the console in DIR that is
# served, sorted; the build's own files (this one, CMakeLists.txt, *.cmake,
# C sources and headers) are not.
function(console_asset_files out dir)
  file(GLOB_RECURSE all LIST_DIRECTORIES false RELATIVE "${dir}" "${dir}/*")
  set(keep "")
  foreach(rel IN LISTS all)
    if(rel MATCHES "(^|/)CMakeLists\\.txt$" OR rel MATCHES "\\.(cmake|c|h)$" OR rel MATCHES "(^|/)\\.")
      continue()
    endif()
    list(APPEND keep "${dir}/${rel}")
  endforeach()
  list(SORT keep)
  set(${out} "${keep}" PARENT_SCOPE)
endfunction()

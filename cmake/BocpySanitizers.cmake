# BOCPY_SANITIZE selects a sanitizer build for every target in the tree.
if(BOCPY_SANITIZE)
  string(REPLACE ";" "," _bocpy_san "${BOCPY_SANITIZE}")
  message(STATUS "bocpy: building with -fsanitize=${_bocpy_san}")
  add_compile_options(-fsanitize=${_bocpy_san} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all -g)
  add_link_options(-fsanitize=${_bocpy_san})
endif()

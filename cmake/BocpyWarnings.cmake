# bocpy_set_warnings(<target>): the project's warning policy, one place.
function(bocpy_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow
                         -Wstrict-prototypes -Wmissing-prototypes)
  if(BOCPY_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

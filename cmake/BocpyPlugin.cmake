# bocpy_add_plugin(NAME <module> SOURCES <files...> [DESTINATION <dir>])
#
# Builds a bocpy plugin: a CPython extension module compiled against the
# stable ABI (Py_LIMITED_API = 3.12) and bocpy's public headers only, so the
# resulting <module>.abi3.so loads on every supported CPython.
function(bocpy_add_plugin)
  cmake_parse_arguments(ARG "" "NAME;DESTINATION" "SOURCES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SOURCES)
    message(FATAL_ERROR "bocpy_add_plugin needs NAME and SOURCES")
  endif()
  # USE_SABI 3.12 defines Py_LIMITED_API=0x030c0000 and gives the module the
  # .abi3.so suffix.
  Python_add_library(${ARG_NAME} MODULE USE_SABI 3.12 WITH_SOABI ${ARG_SOURCES})
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/abi/include)
  # One exported symbol: PyInit_<name> (PyMODINIT_FUNC marks it visible).
  set_target_properties(${ARG_NAME} PROPERTIES C_VISIBILITY_PRESET hidden)
  bocpy_set_warnings(${ARG_NAME})
  if(ARG_DESTINATION)
    install(TARGETS ${ARG_NAME} LIBRARY DESTINATION ${ARG_DESTINATION})
  endif()
endfunction()

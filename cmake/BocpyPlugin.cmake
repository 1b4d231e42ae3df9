# bocpy_add_plugin(NAME <module> SOURCES <files...> [DESTINATION <dir>])
#
# Builds a bocpy plugin: a CPython extension module compiled against the
# stable ABI (Py_LIMITED_API = 3.12) and bocpy's public headers only, so the
# resulting <module>.abi3.so loads on every CPython from 3.12 on.  Built with
# CPython 3.10 or 3.11 (older than the abi3 floor), it is a version-specific
# module instead (<module>.cpython-311-<platform>.so, the full API, no
# Py_LIMITED_API) from the same sources: <bocpy/bocpy.h> then supplies the
# few 3.12 names the sources use (bocpy/compat.h).
#
# The same function serves the source tree (cmake/BocpyPlugin.cmake, included
# by the root CMakeLists.txt) and plugin authors: it is installed next to
# bocpyConfig.cmake, so after find_package(bocpy CONFIG REQUIRED) an
# out-of-tree CMakeLists.txt calls it the same way.  It needs:
#   * the target bocpy::headers (the include directory and Py_LIMITED_API;
#     abi/CMakeLists.txt in the tree, bocpyConfig.cmake outside it);
#   * FindPython's Python_add_library with Development.SABIModule (the root
#     CMakeLists.txt in the tree, bocpyConfig.cmake outside it).
# Warnings: the project's policy (bocpy_set_warnings) in the tree; -Wall
# -Wextra outside it.  -Werror only with BOCPY_WERROR=ON.
function(bocpy_add_plugin)
  cmake_parse_arguments(ARG "" "NAME;DESTINATION" "SOURCES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_SOURCES)
    message(FATAL_ERROR "bocpy_add_plugin needs NAME and SOURCES")
  endif()
  if(NOT TARGET bocpy::headers)
    message(FATAL_ERROR "bocpy_add_plugin(${ARG_NAME}): the target bocpy::headers "
            "is missing; call find_package(bocpy CONFIG REQUIRED) first")
  endif()
  if(NOT COMMAND Python_add_library)
    message(FATAL_ERROR "bocpy_add_plugin(${ARG_NAME}): call find_package(Python 3.10 "
            "REQUIRED COMPONENTS Interpreter Development.Module "
            "OPTIONAL_COMPONENTS Development.SABIModule) first")
  endif()
  if(Python_VERSION VERSION_LESS 3.12)
    # Below the abi3 floor: a module for this CPython version only.
    Python_add_library(${ARG_NAME} MODULE WITH_SOABI ${ARG_SOURCES})
  else()
    # USE_SABI 3.12 defines Py_LIMITED_API=0x030c0000 and gives the module the
    # .abi3.so suffix.
    Python_add_library(${ARG_NAME} MODULE USE_SABI 3.12 WITH_SOABI ${ARG_SOURCES})
  endif()
  target_link_libraries(${ARG_NAME} PRIVATE bocpy::headers)
  set_target_properties(${ARG_NAME} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON
                        C_VISIBILITY_PRESET hidden)
  if(COMMAND bocpy_set_warnings)
    bocpy_set_warnings(${ARG_NAME})
  else()
    target_compile_options(${ARG_NAME} PRIVATE -Wall -Wextra)
    if(BOCPY_WERROR)
      target_compile_options(${ARG_NAME} PRIVATE -Werror)
    endif()
  endif()
  if(ARG_DESTINATION)
    install(TARGETS ${ARG_NAME} LIBRARY DESTINATION ${ARG_DESTINATION})
  endif()
endfunction()

/* cl_loader.c - loads the OpenCL ICD loader with dlopen (see cl_loader.h). */
#define _GNU_SOURCE
#include "cl_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-global by nature: there is one dynamic linker and one ICD loader
 * per process, shared by every interpreter.  Written once, inside
 * pthread_once (which orders the writes before every later reader), and
 * only read afterwards. */
static pthread_once_t clx_once = PTHREAD_ONCE_INIT;
static clx_api clx_table;
static int clx_loaded;
static char clx_error[512];
static char clx_path[256];

/* dlsym() returns an object pointer; the function pointer is copied out of
 * it bytewise (ISO C has no cast between the two; POSIX guarantees they
 * have the same representation). */
static int resolve(void *lib, const char *name, void *slot, size_t size) {
  void *sym = dlsym(lib, name);
  if (sym == NULL) {
    snprintf(clx_error, sizeof(clx_error),
             "the OpenCL library %s has no %s: it is not an OpenCL 1.2 "
             "ICD loader (install ocl-icd-libopencl1)",
             clx_path, name);
    return -1;
  }
  memcpy(slot, &sym, size);
  return 0;
}

static void clx_load_once(void) {
  const char *env = getenv("BOCPY_OPENCL_LIBRARY");
  const char *candidates[] = {"libOpenCL.so.1", "libOpenCL.so", NULL};
  void *lib = NULL;
  if (env != NULL && env[0] != '\0') {
    snprintf(clx_path, sizeof(clx_path), "%s", env);
    lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      const char *why = dlerror();
      snprintf(clx_error, sizeof(clx_error),
               "no OpenCL runtime: BOCPY_OPENCL_LIBRARY=%s could not be "
               "loaded (%s); point it at an OpenCL ICD loader "
               "(libOpenCL.so.1) or unset it",
               env, why != NULL ? why : "unknown error");
      return;
    }
  } else {
    for (int i = 0; candidates[i] != NULL && lib == NULL; i++) {
      snprintf(clx_path, sizeof(clx_path), "%s", candidates[i]);
      lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (lib == NULL) {
      const char *why = dlerror();
      snprintf(clx_error, sizeof(clx_error),
               "no OpenCL runtime: libOpenCL.so.1 could not be loaded (%s); "
               "install an OpenCL ICD loader and a driver (Debian: apt-get "
               "install ocl-icd-libopencl1 pocl-opencl-icd for the CPU, or "
               "your GPU vendor's OpenCL driver), or set "
               "BOCPY_OPENCL_LIBRARY to the loader's path",
               why != NULL ? why : "not found");
      snprintf(clx_path, sizeof(clx_path), "libOpenCL.so.1");
      return;
    }
  }
#define CLX_RESOLVE(name)                                                     \
  if (resolve(lib, #name, &clx_table.name, sizeof(clx_table.name)) < 0) {     \
    dlclose(lib);                                                             \
    return;                                                                   \
  }
  CLX_ENTRIES(CLX_RESOLVE)
#undef CLX_RESOLVE
  clx_loaded = 1;
}

const clx_api *clx_get(void) {
  pthread_once(&clx_once, clx_load_once);
  return clx_loaded ? &clx_table : NULL;
}

const char *clx_load_error(void) {
  pthread_once(&clx_once, clx_load_once);
  return clx_loaded ? "" : clx_error;
}

const char *clx_library(void) {
  pthread_once(&clx_once, clx_load_once);
  return clx_path;
}

const char *clx_error_name(cl_int code) {
  switch (code) {
#define N(c)                                                                  \
  case c:                                                                     \
    return #c;
    N(CL_SUCCESS)
    N(CL_DEVICE_NOT_FOUND)
    N(CL_DEVICE_NOT_AVAILABLE)
    N(CL_COMPILER_NOT_AVAILABLE)
    N(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    N(CL_OUT_OF_RESOURCES)
    N(CL_OUT_OF_HOST_MEMORY)
    N(CL_PROFILING_INFO_NOT_AVAILABLE)
    N(CL_MEM_COPY_OVERLAP)
    N(CL_IMAGE_FORMAT_MISMATCH)
    N(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    N(CL_BUILD_PROGRAM_FAILURE)
    N(CL_MAP_FAILURE)
    N(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    N(CL_COMPILE_PROGRAM_FAILURE)
    N(CL_LINKER_NOT_AVAILABLE)
    N(CL_LINK_PROGRAM_FAILURE)
    N(CL_DEVICE_PARTITION_FAILED)
    N(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    N(CL_INVALID_VALUE)
    N(CL_INVALID_DEVICE_TYPE)
    N(CL_INVALID_PLATFORM)
    N(CL_INVALID_DEVICE)
    N(CL_INVALID_CONTEXT)
    N(CL_INVALID_QUEUE_PROPERTIES)
    N(CL_INVALID_COMMAND_QUEUE)
    N(CL_INVALID_HOST_PTR)
    N(CL_INVALID_MEM_OBJECT)
    N(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    N(CL_INVALID_IMAGE_SIZE)
    N(CL_INVALID_SAMPLER)
    N(CL_INVALID_BINARY)
    N(CL_INVALID_BUILD_OPTIONS)
    N(CL_INVALID_PROGRAM)
    N(CL_INVALID_PROGRAM_EXECUTABLE)
    N(CL_INVALID_KERNEL_NAME)
    N(CL_INVALID_KERNEL_DEFINITION)
    N(CL_INVALID_KERNEL)
    N(CL_INVALID_ARG_INDEX)
    N(CL_INVALID_ARG_VALUE)
    N(CL_INVALID_ARG_SIZE)
    N(CL_INVALID_KERNEL_ARGS)
    N(CL_INVALID_WORK_DIMENSION)
    N(CL_INVALID_WORK_GROUP_SIZE)
    N(CL_INVALID_WORK_ITEM_SIZE)
    N(CL_INVALID_GLOBAL_OFFSET)
    N(CL_INVALID_EVENT_WAIT_LIST)
    N(CL_INVALID_EVENT)
    N(CL_INVALID_OPERATION)
    N(CL_INVALID_GL_OBJECT)
    N(CL_INVALID_BUFFER_SIZE)
    N(CL_INVALID_MIP_LEVEL)
    N(CL_INVALID_GLOBAL_WORK_SIZE)
    N(CL_INVALID_PROPERTY)
    N(CL_INVALID_IMAGE_DESCRIPTOR)
    N(CL_INVALID_COMPILER_OPTIONS)
    N(CL_INVALID_LINKER_OPTIONS)
    N(CL_INVALID_DEVICE_PARTITION_COUNT)
    N(CL_PLATFORM_NOT_FOUND_KHR)
#undef N
  default:
    return "unknown OpenCL error";
  }
}

/* ocl_queue.c - queue waits and host <-> device copies (see ocl_queue.h). */
#include "ocl_queue.h"

#include <time.h>

/* How long ocl_queue_wait spins before it releases the GIL (1 ms: a small
 * kernel finishes well within it, and it is 1/5 of the switch interval). */
#define OCL_SPIN_NS 1000000

/* Releasing the GIL around every wait looks right but is slow for short
 * kernels: when another thread of the main interpreter wants the GIL, it
 * takes it and this thread gets it back only after the switch interval (5
 * ms), which caps pinned dispatch at ~200 behaviors a second.  So a wait
 * first spins briefly, holding the GIL, on a marker event; only work that
 * is still running after OCL_SPIN_NS is waited for with the GIL released. */

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

cl_int ocl_queue_wait(const clx_api *cl, cl_command_queue q) {
  cl_event ev = NULL;
  cl_int err = cl->clEnqueueMarkerWithWaitList(q, 0, NULL, &ev);
  if (err != CL_SUCCESS) {
    cl_int ferr;
    Py_BEGIN_ALLOW_THREADS
    ferr = cl->clFinish(q);
    Py_END_ALLOW_THREADS
    return ferr;
  }
  cl_int status = CL_QUEUED;
  const long long start = now_ns();
  do {
    if (cl->clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS,
                           sizeof(status), &status, NULL) != CL_SUCCESS) {
      status = CL_QUEUED; /* fall back to waiting */
      break;
    }
  } while (status > CL_COMPLETE && now_ns() - start < OCL_SPIN_NS);
  if (status > CL_COMPLETE) {
    Py_BEGIN_ALLOW_THREADS
    err = cl->clWaitForEvents(1, &ev);
    Py_END_ALLOW_THREADS
    if (cl->clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS,
                           sizeof(status), &status, NULL) != CL_SUCCESS) {
      status = err == CL_SUCCESS ? CL_COMPLETE : err;
    }
  }
  cl->clReleaseEvent(ev);
  return status < 0 ? status : CL_SUCCESS;
}


cl_int ocl_transfer(const clx_api *cl, cl_command_queue q, cl_mem mem,
                    int to_device, void *host, size_t bytes) {
  cl_int err = ocl_queue_wait(cl, q);
  if (err != CL_SUCCESS) {
    return err;
  }
  if (bytes <= OCL_GIL_COPY_LIMIT) {
    return to_device ? cl->clEnqueueWriteBuffer(q, mem, CL_TRUE, 0, bytes,
                                                host, 0, NULL, NULL)
                     : cl->clEnqueueReadBuffer(q, mem, CL_TRUE, 0, bytes,
                                               host, 0, NULL, NULL);
  }
  Py_BEGIN_ALLOW_THREADS
  err = to_device ? cl->clEnqueueWriteBuffer(q, mem, CL_TRUE, 0, bytes, host,
                                             0, NULL, NULL)
                  : cl->clEnqueueReadBuffer(q, mem, CL_TRUE, 0, bytes, host,
                                            0, NULL, NULL);
  Py_END_ALLOW_THREADS
  return err;
}

/* runtime.h - the one runtime of the process: workers, scheduler,
 * termination count, dispatch; start, quiesce and stop.
 *
 * Process-global by necessity: every interpreter (main and workers) schedules
 * into the same scheduler and counts into the same terminator.
 */
#ifndef BOCPY_CORE_RUNTIME_H
#define BOCPY_CORE_RUNTIME_H

#include <Python.h>

#include "exec/behavior.h"
#include "engine/sched.h"
#include "engine/terminator.h"

/* Where scheduled behaviors go (always valid, also while stopped): pass it
 * to boc_behavior_schedule. */
const boc_dispatch_t *boc_runtime_dispatch(void);

/* 1 while the runtime accepts and runs behaviors. */
int boc_runtime_running(void);
/* 1 when no behavior is in flight (stopped, or running and quiescent). */
int boc_runtime_idle(void);
int boc_runtime_worker_count(void);
/* Fills out[0..n) with each worker's queue length now (a hint) and returns
 * n, the number of workers; 0 when stopped.  Main interpreter (GIL held) or
 * a worker. */
int boc_runtime_queue_depths(size_t *out, int max);
/* Behaviors in flight now: scheduled and not yet retired (a hint). */
int64_t boc_runtime_in_flight(void);

/* Starts n workers (main interpreter, GIL held).  bootstrap is encoded and
 * handed to bocpy._worker.bootstrap in each worker.  -1 with an exception
 * on failure (the runtime is then stopped). */
int boc_runtime_start(int n, PyObject *bootstrap);

/* Waits for quiescence (main interpreter, GIL held; released while waiting;
 * pinned behaviors are run meanwhile).  timeout < 0: forever.  With
 * teardown, the runtime is then stopped.  stats: if non-NULL, receives a new
 * list of per-worker dicts.  Returns 0, or -1 with TimeoutError (runtime
 * left running) or another exception. */
int boc_runtime_wait(double timeout, int teardown, PyObject **stats);

/* Destroys the parked worker interpreters (main interpreter, stopped
 * runtime; e.g. at exit).  -1 with RuntimeError while running. */
int boc_runtime_shutdown_pool(void);

/* Longest sleep of wait()'s pump loop, in milliseconds (main thread). */
void boc_runtime_set_poll_ms(int64_t ms);

#endif /* BOCPY_CORE_RUNTIME_H */

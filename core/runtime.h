/* runtime.h - the one runtime of the process: workers, scheduler,
 * termination count, pinned queue; start, quiesce and stop.
 *
 * Process-global by necessity: every interpreter (main and workers) schedules
 * into the same scheduler and counts into the same terminator.
 */
#ifndef BOCPY_CORE_RUNTIME_H
#define BOCPY_CORE_RUNTIME_H

#include <Python.h>

#include "behavior.h"
#include "sched.h"
#include "terminator.h"

/* Index of the calling thread's worker, or -1 on any other thread. */
int boc_worker_index(void);

/* The termination counter (always valid, also while stopped). */
boc_terminator_t *boc_runtime_terminator(void);

/* Ready callback of the 2PL layer: routes a behavior that holds all its
 * cowns to a worker queue or, if pinned, to the main-thread queue. */
void boc_runtime_ready(boc_waiter_t *waiter, void *ctx);

/* 1 while the runtime accepts and runs behaviors. */
int boc_runtime_running(void);
/* 1 when no behavior is in flight (stopped, or running and quiescent). */
int boc_runtime_idle(void);
int boc_runtime_worker_count(void);

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

/* Pinned queue (main-thread behaviors). */
boc_behavior_t *boc_pinned_pop(void);
int64_t boc_pinned_depth(void);
/* When the pinned queue last became non-empty (monotonic ns), 0 if empty. */
int64_t boc_pinned_nonempty_since(void);

#endif /* BOCPY_CORE_RUNTIME_H */

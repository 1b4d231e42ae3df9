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
#include "exec/worker.h"
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
/* Behaviors in flight now: scheduled and not yet retired (a hint; 0 when
 * stopped). */
int64_t boc_runtime_in_flight(void);

/* Starts n workers (main interpreter, GIL held).  bootstrap is encoded and
 * handed to bocpy._worker.bootstrap in each worker.  -1 with an exception
 * on failure (the runtime is then stopped). */
int boc_runtime_start(int n, PyObject *bootstrap);

/* Waits for quiescence (main interpreter, GIL held; released while waiting;
 * pinned behaviors are run meanwhile on the pinned thread, the deadline and
 * signals checked between two of them).  Several threads may wait at once.
 * timeout < 0: forever.  With teardown, the runtime is then stopped (after
 * other threads' waits have returned).  stats: if non-NULL, receives a new
 * list of per-worker dicts.  Returns 0, or -1 with TimeoutError (runtime
 * left running; names the pinned behaviors waiting for the main thread
 * when called on another thread), a KeyboardInterrupt/SystemExit from a
 * pinned body or a signal, the interrupt (boc_runtime_interrupt), or
 * another exception. */
int boc_runtime_wait(double timeout, int teardown, PyObject **stats);

/* Destroys the parked worker interpreters (main interpreter, stopped
 * runtime): before a fork (close = 0: a later start() makes new ones), or at
 * exit (close = 1: the runtime can never start again).  -1 with
 * RuntimeError while running. */
int boc_runtime_shutdown_pool(int close);

/* The exit sequence has begun on the calling thread (main interpreter):
 * from now on only this thread (and behaviors) may schedule; others get
 * RuntimeError("bocpy is shutting down..."). */
void boc_runtime_begin_exit(void);
int boc_runtime_exiting(void);

/* Around fork() (main interpreter, GIL held): prepare ends the worker
 * interpreters (a stopped runtime's parked pool; a running runtime is
 * paused: workers finish their current body first); fork_parent restarts
 * a paused runtime's workers.  -1 with an exception on failure. */
int boc_runtime_fork_prepare(void);
int boc_runtime_fork_parent(void);

/* In a forked child (after fork, main interpreter): if the parent had a
 * runtime or worker pool, marks this process unusable (every entry point
 * raises RuntimeError) and returns 1; else 0. */
int boc_runtime_after_fork_child(void);
int boc_runtime_forked(void);

/* From now until the runtime stops, behaviors that have not started are
 * retired without running (their result cowns get RuntimeError); the exit
 * after an interrupt.  boc_runtime_dropped(): how many so far. */
void boc_runtime_cancel_pending(void);
int64_t boc_runtime_dropped(void);
/* The program was interrupted by signal sig (the exit after Ctrl-C or
 * SIGTERM, on the exiting thread after boc_runtime_begin_exit): cancels
 * pending behaviors as boc_runtime_cancel_pending does, and every wait()
 * or quiesce() on another thread raises at once (KeyboardInterrupt for
 * SIGINT, else SystemExit(128 + sig)).  The first signal is kept.
 * boc_runtime_interrupted(): that signal, 0 if none. */
void boc_runtime_interrupt(int sig);
int boc_runtime_interrupted(void);
/* The Python behaviors running on workers now (see boc_workers_busy). */
int boc_runtime_busy(boc_busy_t *out, int max);

/* Longest sleep of wait()'s pump loop, in milliseconds (main thread). */
void boc_runtime_set_poll_ms(int64_t ms);

#endif /* BOCPY_CORE_RUNTIME_H */

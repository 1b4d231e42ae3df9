/* executor.h - the queue of an external executor.
 *
 * The runtime hands every ready behavior to one executor, chosen per run at
 * start (runtime.h, boc_runtime_set_executor):
 *   BOC_EXEC_WORKERS   the pool of worker sub-interpreters (engine/sched.c);
 *   BOC_EXEC_EXTERNAL  a driver thread of the main interpreter takes ready
 *                      behaviors from this queue (boc_external_take) and runs
 *                      each with boc_behavior_run_via and a call hook, which
 *                      decides what running a body means (bocpy/ray/: submit
 *                      it to a Ray cluster).
 * Pinned behaviors always go to the main-thread queue (pinned.h), whatever
 * the executor.  The 2PL engine decides the order in every case: a behavior
 * reaches an executor only when it holds every cown it names.
 */
#ifndef BOCPY_CORE_EXECUTOR_H
#define BOCPY_CORE_EXECUTOR_H

#include "exec/behavior.h"

enum {
  BOC_EXEC_WORKERS = 0,
  BOC_EXEC_EXTERNAL = 1,
};

/* Queues a ready behavior for the external executor (any thread). */
void boc_external_push(boc_behavior_t *b);
/* The oldest queued behavior, waiting at most timeout_ns for one (0: do not
 * wait; negative: forever) or until boc_external_wake; NULL if none.  Call
 * without holding a GIL when timeout_ns != 0. */
boc_behavior_t *boc_external_take(int64_t timeout_ns);
/* Wakes every thread blocked in boc_external_take. */
void boc_external_wake(void);
/* Behaviors queued now (a hint). */
int64_t boc_external_depth(void);

#endif /* BOCPY_CORE_EXECUTOR_H */

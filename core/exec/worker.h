/* worker.h - the worker pool: threads, each hosting a sub-interpreter with
 * its own GIL, and the worker loop (pop a behavior, run it, repeat).
 *
 * Workers outlive a runtime: wait() parks them, the next start() reuses
 * them, and only the end of the process (or boc_workers_shutdown) destroys
 * their interpreters.  CPython does not give all of an isolated
 * interpreter's memory back when it is destroyed (several MiB each on 3.12
 * and 3.13), so a fresh interpreter per start/wait cycle would grow the
 * process without bound.
 */
#ifndef BOCPY_CORE_WORKER_H
#define BOCPY_CORE_WORKER_H

#include "engine/sched.h"
#include "exec/behavior.h"
#include "exec/observe.h"
#include "value/transport.h"

/* Makes workers 0..n-1 pop from s, creating the missing ones.  Each active
 * worker first runs bocpy._worker.bootstrap(<decoded boot>, index).  Call
 * with no GIL held (workers need the main interpreter's GIL to start).
 * Returns 0, or -1 with *error set to a malloc'd message (workers activated
 * so far are parked again first).  Workers n.. of a larger pool stay
 * parked, kept for a later larger run (their interpreters are reused, not
 * destroyed: see worker.c, pool_used). */
int boc_workers_activate(int n, boc_sched_t *s, const boc_payload_t *boot,
                         char **error);

/* After boc_sched_stop(s): waits until workers 0..n-1 have finished their
 * current behavior and parked.  No GIL held. */
void boc_workers_deactivate(int n);

/* Destroys every pooled worker's interpreter and joins its thread (they
 * must be parked).  No GIL held; main interpreter, e.g. at exit. */
void boc_workers_shutdown(void);

/* In a forked child: forgets the pool (its threads do not exist there). */
void boc_workers_forget(void);

/* A behavior running on a worker right now, for the exit report. */
typedef struct boc_busy {
  int worker;
  boc_code_t *code;  /* a reference: boc_code_decref it */
  int64_t since_ns;  /* boc_now_ns() when it started */
} boc_busy_t;
/* Fills out[0..max) with the Python behaviors running on workers 0..n-1;
 * returns how many.  Any thread. */
int boc_workers_busy(int n, boc_busy_t *out, int max);

/* Workers of the current or last run (0 when there is no pool); the pool
 * may keep more, parked, from an earlier larger run. */
int boc_workers_pooled(void);

/* A copy of worker i's live counters (observe.h). */
typedef struct boc_counts {
  uint64_t finished, failed, dropped;
  int running;
} boc_counts_t;
/* Fills *out with worker i's counters: 0, or -1 past the pool.  Any
 * thread. */
int boc_worker_counters(int i, boc_counts_t *out);

#endif /* BOCPY_CORE_WORKER_H */

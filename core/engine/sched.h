/* sched.h - the worker scheduler: per-worker queues, work stealing, parking.
 *
 * The scheduler moves opaque nodes (boc_sched_node_t, embedded in whatever
 * the caller schedules) between threads.  It knows nothing of behaviors,
 * cowns or Python: the behavior record puts a node in its scheduler-owned
 * header and maps it back after a pop.
 *
 * Threads: workers 0..n-1 each call boc_sched_pop(s, i) in a loop; any thread
 * may push.  A push from worker i (self = i) goes to i's own "next" slot
 * (the previous occupant moves to i's queue), which keeps a chain of
 * behaviors hot on one worker: it is meant for work that becomes ready as
 * worker i finishes a node (i pops the slot next).  Work that worker i makes
 * ready while it keeps running goes to i's queue instead
 * (boc_sched_push_shared), where an idle worker can take it at once.  A push
 * from elsewhere (self = -1) goes round-robin to a worker's queue.  Idle
 * workers steal half of a victim's queue.  Every node left in a queue whose
 * owner is busy (or already being woken for another node) wakes a parked
 * worker.  Parking cannot lose a wake-up: a push that races with a worker
 * going to sleep either is seen by that worker's last re-check or wakes it.
 * The policy is documented in docs/model.md ("Scheduling policy").
 */
#ifndef BOCPY_CORE_SCHED_H
#define BOCPY_CORE_SCHED_H

#include "engine/platform.h"

typedef struct boc_sched_node {
  struct boc_sched_node *next; /* owned by the scheduler while queued */
} boc_sched_node_t;

/* Counters per worker; each is written only by its worker (relaxed atomics)
 * except pushed_remote, which counts pushes *into* this worker's queue. */
typedef struct boc_sched_stats {
  uint64_t worker_index;
  uint64_t pushed_local;          /* own queue, from this worker */
  uint64_t dispatched_to_pending; /* into the "next" slot */
  uint64_t pushed_remote;         /* into this worker's queue from outside */
  uint64_t popped_local;          /* from own slot or queue */
  uint64_t popped_via_steal;      /* nodes taken from another worker */
  uint64_t steal_attempts;
  uint64_t steal_failures;
  uint64_t parked;                /* times the worker went to sleep */
  uint64_t last_steal_attempt_ns; /* monotonic time of the last attempt */
  uint64_t batch_resets;          /* "next" slot bypassed for fairness */
  uint64_t busy_ns;               /* time between pops spent running work */
} boc_sched_stats_t;

typedef struct boc_sched boc_sched_t; /* opaque */

/* The calling thread's worker index: set once by each worker thread before
 * its first pop; -1 on every other thread.  Pushes pass it as `self`. */
void boc_sched_bind_worker(int index);
int boc_sched_worker_index(void);

/* A scheduler for n >= 1 workers; NULL on allocation failure. */
boc_sched_t *boc_sched_new(int n);
/* Frees the scheduler; it must be stopped and every worker gone. */
void boc_sched_free(boc_sched_t *s);
int boc_sched_workers(const boc_sched_t *s);

/* Queues node.  self: the calling worker's index, or -1 from any other
 * thread.  Never blocks for long (short critical sections only). */
void boc_sched_push(boc_sched_t *s, int self, boc_sched_node_t *node);

/* Like a push from another thread, but into worker target's queue (it is
 * woken if parked; if it is busy an idle worker is woken to steal).  The
 * dispatcher uses it to send a behavior where its values live. */
void boc_sched_push_to(boc_sched_t *s, int target, boc_sched_node_t *node);

/* Whether worker i is parked now (a hint: it may change at once). */
bool boc_sched_parked(const boc_sched_t *s, int i);

/* Asks worker i to come back from boc_sched_pop once (it returns NULL
 * though the scheduler is not stopped), waking it if parked: the worker
 * then runs a chore (serving value hand-over requests) and pops again.
 * Any thread; never loses the request (see the parking protocol). */
void boc_sched_poke(boc_sched_t *s, int i);
/* Whether boc_sched_stop was called (and not undone). */
bool boc_sched_stopping(const boc_sched_t *s);
/* Queues node from worker self while self goes on running (a behavior body
 * that schedules): to the tail of self's queue, visible to thieves at once,
 * waking a parked worker if any.  From self = -1 it is boc_sched_push. */
void boc_sched_push_shared(boc_sched_t *s, int self, boc_sched_node_t *node);

/* Non-blocking: the next node for worker self (own slot, own queue, then one
 * steal round), or NULL. */
boc_sched_node_t *boc_sched_try_pop(boc_sched_t *s, int self);

/* Blocking: returns the next node for worker self, spinning and stealing
 * briefly and then parking; returns NULL once boc_sched_stop has been
 * called (nodes still queued then are left for boc_sched_drain), or once
 * after a boc_sched_poke of self.  Call it
 * with no lock held (release the GIL around it). */
boc_sched_node_t *boc_sched_pop(boc_sched_t *s, int self);

/* Records that worker self spent ns running the node it popped. */
void boc_sched_add_busy(boc_sched_t *s, int self, int64_t ns);

/* How long a parked worker sleeps before it re-checks on its own (a
 * belt-and-braces timeout; 100 ms by default, ns <= 0 restores that).  Tests
 * set it very long, so that a lost wake-up shows as a hang. */
void boc_sched_set_park_timeout(boc_sched_t *s, int64_t ns);

/* Makes every present and future boc_sched_pop return NULL and wakes all
 * parked workers. */
void boc_sched_stop(boc_sched_t *s);
/* Undoes boc_sched_stop once every worker has returned (queued nodes stay
 * queued): the runtime pauses this way around a fork(). */
void boc_sched_resume(boc_sched_t *s);

/* After the workers are gone: removes and returns every node still queued,
 * linked through ->next (NULL when none). */
boc_sched_node_t *boc_sched_drain(boc_sched_t *s);

/* Copies worker i's counters. */
void boc_sched_get_stats(const boc_sched_t *s, int i, boc_sched_stats_t *out);
/* Nodes in worker i's queue now (a hint: may change at once; the one-node
 * "next" slot is not counted). */
size_t boc_sched_queued(const boc_sched_t *s, int i);

/* ---- a locked FIFO of nodes ------------------------------------------------
 * One queue that any thread may push to and pop from, under its mutex: the
 * main thread's queue of pinned behaviors (exec/pinned.c) and the external
 * executor's queue (exec/executor.c) are each one.  The caller locks mu
 * around the _locked calls, so that it can do its own bookkeeping (a
 * condition variable, a timestamp) under the same lock. */
typedef struct boc_fifo {
  boc_mutex_t mu;
  boc_sched_node_t *head, *tail; /* guarded by mu */
  /* Nodes queued: written under mu, readable without it as a hint. */
  _Atomic int64_t depth;
} boc_fifo_t;

/* An empty queue; 0 on success. */
int boc_fifo_init(boc_fifo_t *q);
/* Appends node (mu held); returns the depth before it. */
int64_t boc_fifo_push_locked(boc_fifo_t *q, boc_sched_node_t *node);
/* Removes and returns the oldest node, NULL if none (mu held); *left (if
 * not NULL) is the depth after. */
boc_sched_node_t *boc_fifo_pop_locked(boc_fifo_t *q, int64_t *left);
/* The depth without the lock: a hint, which may change at once. */
int64_t boc_fifo_depth(const boc_fifo_t *q);

#endif /* BOCPY_CORE_SCHED_H */

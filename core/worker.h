/* worker.h - worker threads, each hosting a sub-interpreter with its own
 * GIL, and the worker loop (pop a behavior, run it, repeat). */
#ifndef BOCPY_CORE_WORKER_H
#define BOCPY_CORE_WORKER_H

#include "sched.h"
#include "transport.h"

typedef struct boc_worker boc_worker_t; /* opaque */

/* Starts n workers popping from s.  Each creates its interpreter, runs
 * bocpy._worker.bootstrap(<decoded bootstrap>) and reports back.  Call with
 * no GIL held (the workers need the main interpreter's GIL to start).
 * Returns the array, or NULL with *error set to a malloc'd message (workers
 * that did start are stopped and joined first). */
boc_worker_t *boc_workers_start(int n, boc_sched_t *s,
                                const boc_payload_t *bootstrap, char **error);

/* Joins the workers after boc_sched_stop(s): each finishes the behavior it
 * is running, destroys its interpreter and exits.  No GIL held.  Frees the
 * array. */
void boc_workers_join(boc_worker_t *ws, int n);

#endif /* BOCPY_CORE_WORKER_H */

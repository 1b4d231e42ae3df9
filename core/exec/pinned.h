/* pinned.h - the main-thread queue of pinned behaviors (those naming a
 * PinnedCown) and the pump that runs them.  The runtime's ready callback
 * pushes; pump() and wait() on the main thread pop. */
#ifndef BOCPY_CORE_PINNED_H
#define BOCPY_CORE_PINNED_H

#include <Python.h>

#include "exec/behavior.h"
#include "value/state.h"

/* Queues a ready pinned behavior (any thread, never blocks for long). */
void boc_pinned_push(boc_behavior_t *b);
/* The oldest queued pinned behavior, or NULL (any thread). */
boc_behavior_t *boc_pinned_pop(void);
/* Behaviors queued now (a hint: may change at once). */
int64_t boc_pinned_depth(void);
/* When the queue last became non-empty (monotonic ns), 0 if empty. */
int64_t boc_pinned_nonempty_since(void);

typedef struct boc_pump_result {
  int64_t executed;     /* behaviors retired (body ran or failed to start) */
  int64_t raised;       /* of those, bodies that raised an Exception */
  int deadline_reached; /* the deadline stopped it with work still queued */
} boc_pump_result_t;

/* Runs ready pinned behaviors one at a time on the calling (main) thread
 * until the queue is empty, max_behaviors (> 0) have run, or deadline_ms
 * (> 0) has passed (checked after each behavior: never interrupts one).
 * Returns 0 with *out filled; -1 with RuntimeError (not the main
 * interpreter; called from inside a pinned behavior), with the first body
 * exception when raise_on_error (after the queue is drained), or with a
 * BaseException that is not an Exception, at once. */
int boc_pump(boc_state_t *st, int64_t deadline_ms, int64_t max_behaviors,
             int raise_on_error, boc_pump_result_t *out);

#endif /* BOCPY_CORE_PINNED_H */

/* observe.h - a look inside a running program: live behavior counters and
 * the trace-event recorder (see docs/observability.md).
 *
 * Counters.  A worker counts the behaviors it runs into its own block, in
 * its loop (single writer: relaxed load+store, no thread-local lookup on
 * the hot path); pinned behaviors are counted into one shared block
 * (relaxed fetch_add).  Failures and drops, which are rare, are counted
 * into the calling thread's block (a thread-local lookup).  "Scheduled" is
 * not counted: it is finished + dropped + in flight.  Readers sum the
 * blocks at any time; values are recent, never exact snapshots.
 *
 * Trace.  While tracing is on, every behavior that runs appends one event
 * (start, end, code, cown ids, exception type) to its thread's buffer, and
 * workers add queue-depth samples.  Off, the cost is one relaxed load per
 * behavior.
 */
#ifndef BOCPY_CORE_OBSERVE_H
#define BOCPY_CORE_OBSERVE_H

#include <Python.h>

#include "engine/platform.h"

struct boc_code; /* exec/behavior.h (not included: behavior.c includes us) */

typedef struct boc_counters {
  _Atomic uint64_t finished;  /* behaviors run here (body ran or failed) */
  _Atomic uint64_t failed;    /* of those, ones that stored an exception */
  _Atomic uint64_t dropped;   /* behaviors dropped at stop (never ran) */
  _Atomic int running;        /* 1 while a behavior runs on this thread */
  int shared;                 /* several writers: use fetch_add */
} boc_counters_t;

/* Binds the calling thread (a worker) to its own counter block, which must
 * outlive the thread's use of it; NULL unbinds (back to the shared one). */
void boc_observe_bind(boc_counters_t *c);
/* The calling thread's counter block. */
boc_counters_t *boc_observe_counters(void);
/* The block of every thread that is not a bound worker. */
boc_counters_t *boc_observe_shared_counters(void);

static inline void boc_count(boc_counters_t *c, _Atomic uint64_t *field) {
  if (c->shared) {
    /* relaxed: a statistic; orders nothing. */
    atomic_fetch_add_explicit(field, 1, BOC_RELAXED);
  } else {
    /* single writer: a relaxed load + store is enough (no locked RMW). */
    atomic_store_explicit(field, atomic_load_explicit(field, BOC_RELAXED) + 1,
                          BOC_RELAXED);
  }
}

/* ---- trace ------------------------------------------------------------------ */

/* Tracing on/off (relaxed: a behavior that starts around the switch may or
 * may not be recorded; nothing else depends on it). */
extern _Atomic int boc_trace_on;

static inline int boc_tracing(void) {
  return atomic_load_explicit(&boc_trace_on, BOC_RELAXED);
}

enum { BOC_TRACE_COWNS = 8, BOC_TRACE_EXC = 64 };
/* The worker of a behavior an external executor handled (executor.h): the
 * times are when the driver's executor thread handed it on (bocpy.trace
 * replaces them with the run times the executor reports, if any). */
enum { BOC_TRACE_EXTERNAL = -2 };

typedef struct boc_trace_event {
  int64_t t0, t1;        /* monotonic ns; t1 < 0: a counter sample */
  struct boc_code *code; /* owned reference; NULL for a C body or a sample */
  int32_t worker;        /* worker index, -1 for main (pinned), or
                            BOC_TRACE_EXTERNAL */
  int32_t ncowns;        /* cowns named (ids of the first few below) */
  int64_t value;         /* sample: queue depth */
  uint64_t result;       /* result cown id */
  uint64_t cowns[BOC_TRACE_COWNS];
  char exc[BOC_TRACE_EXC]; /* exception type name, "" when none */
  uint64_t scope;        /* id of the behavior's scope, 0 when none */
} boc_trace_event_t;

/* Releases an event's code reference (boc_code_decref). */
typedef void (*boc_trace_release_fn)(struct boc_code *code);

/* Starts recording (drops, with release, anything recorded before). */
void boc_trace_start(boc_trace_release_fn release);
/* Stops recording. */
void boc_trace_stop(void);
/* Appends a copy of ev to the calling thread's buffer, which then owns
 * ev->code.  -1 when it could not (out of memory): the caller still owns
 * ev->code. */
int boc_trace_record(const boc_trace_event_t *ev);
/* Moves every recorded event into a new array (*n of them), oldest first per
 * thread; the caller owns it (codes included): boc_trace_free.  NULL when
 * none. */
boc_trace_event_t *boc_trace_take(size_t *n);
void boc_trace_free(boc_trace_event_t *evs, size_t n,
                    boc_trace_release_fn release);

#endif /* BOCPY_CORE_OBSERVE_H */

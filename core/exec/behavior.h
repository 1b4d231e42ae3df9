/* behavior.h - behavior records: what runs, on which cowns, with what.
 *
 * A behavior record is one raw allocation: the scheduler-owned header (queue
 * node, 2PL waiter, routing flag), then the behavior's own fields, then its
 * request array.  The scheduler and the 2PL code only ever see the header.
 */
#ifndef BOCPY_CORE_BEHAVIOR_H
#define BOCPY_CORE_BEHAVIOR_H

#include <Python.h>

#include "engine/request.h"
#include "engine/sched.h"
#include "engine/terminator.h"
#include "value/cown.h"
#include "value/transport.h"

/* Marshalled code of a behavior body, shared by every interpreter. */
typedef struct boc_code {
  _Atomic intptr_t refs;
  uint64_t id;    /* unique per blob: the key of each interpreter's cache */
  char *module;   /* the defining module's __name__ (UTF-8) */
  char *file;     /* its source file, or NULL */
  size_t size;
  char bytes[];   /* marshal.dumps(code) */
} boc_code_t;

boc_code_t *boc_code_new(const char *bytes, size_t size, const char *module,
                         const char *file);
void boc_code_decref(boc_code_t *code);
static inline void boc_code_incref(boc_code_t *code) {
  /* relaxed: the caller already holds a reference */
  atomic_fetch_add_explicit(&code->refs, 1, BOC_RELAXED);
}

/* Where a behavior goes when it holds its cowns, and what counts it in and
 * out: given by the runtime (runtime.h) to boc_behavior_schedule, so this
 * layer never looks the runtime up.  Must outlive every behavior scheduled
 * with it (the runtime's is process-lifetime). */
typedef struct boc_dispatch {
  boc_ready_fn ready;      /* the 2PL ready callback (request.h) */
  void *ctx;               /* its context */
  boc_terminator_t *term;  /* the termination count */
  /* Called (GIL held) before a behavior is counted in: 0 to accept it, or
   * -1 with an exception (e.g. the process is exiting). */
  int (*admit)(void *ctx);
  /* While non-zero, a behavior that reaches boc_behavior_run is retired
   * without running (RuntimeError on its result) and counted in `dropped`
   * (the exit after an interrupt).  relaxed: a flag polled per behavior. */
  _Atomic int cancel;
  _Atomic int64_t dropped;
} boc_dispatch_t;

/* The scheduler-owned header, first in every behavior record. */
typedef struct boc_bhdr {
  boc_sched_node_t node;
  boc_waiter_t waiter;
  const boc_dispatch_t *dispatch; /* set when scheduled */
  uint8_t pinned; /* 1: runs on the main thread (a pinned cown is named) */
} boc_bhdr_t;

/* A behavior whose body is a C function (the C ABI's schedule_c): run as
 * fn(handles, n, ctx) -> 0, or -1 with an exception set; free_ctx(ctx) is
 * called once when the record is freed (any thread, a GIL held). */
typedef int (*boc_cfn_body_t)(PyObject **cowns, Py_ssize_t n, void *ctx);
typedef struct boc_cfn {
  boc_cfn_body_t fn;
  void *ctx;
  void (*free_ctx)(void *ctx); /* may be NULL */
} boc_cfn_t;

typedef struct boc_behavior {
  boc_bhdr_t hdr;
  boc_code_t *code; /* NULL for a C behavior */
  boc_cfn_t *cfn;   /* C behaviors only (malloc'd), else NULL */
  boc_payload_t *captures; /* (cells, extras, globals) or NULL for none */
  boc_cown_t *result;
  int32_t nargs;   /* @when arguments */
  int32_t ncowns;  /* cowns over all arguments (groups flattened) */
  int32_t nreqs;   /* distinct cowns incl. the result, after dedup */
  int32_t *shape;  /* per argument: -1 a single cown, n >= 0 a group of n */
  boc_cown_t **cowns; /* flattened argument cowns, strong references */
  boc_request_t reqs[];
} boc_behavior_t;

static inline boc_behavior_t *boc_behavior_of_node(boc_sched_node_t *n) {
  return (boc_behavior_t *)((char *)n - offsetof(boc_behavior_t, hdr.node));
}
static inline boc_behavior_t *boc_behavior_of_waiter(boc_waiter_t *w) {
  return (boc_behavior_t *)((char *)w - offsetof(boc_behavior_t, hdr.waiter));
}

/* Builds a behavior over args (a sequence whose items are cown handles or
 * lists/tuples of handles) with a fresh result cown.  Takes a reference to
 * code; takes ownership of captures (also on failure).  NULL with TypeError
 * on a bad argument. */
boc_behavior_t *boc_behavior_new(boc_code_t *code, PyObject *args,
                                 boc_payload_t *captures);
/* Likewise for a C body: takes ownership of cfn (a malloc'd record; its
 * free_ctx runs and it is freed also on failure).  The body receives the
 * flattened cown handles. */
boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn);

/* Counts the behavior in on d's terminator and links it (see request.h);
 * once ready it goes to d's ready callback, and when retired it is counted
 * out on d.  On success returns a new reference to its result cown record
 * and the behavior belongs to the runtime; on failure (the terminator is
 * closed: runtime not running) frees it and returns NULL with
 * RuntimeError. */
boc_cown_t *boc_behavior_schedule(boc_behavior_t *b, const boc_dispatch_t *d);

/* Runs the body on the current interpreter and retires the behavior: stores
 * the result or exception, releases every cown, hands them on, decrements
 * the termination count and frees the record.  GIL held.  Returns 1 if the
 * body raised (the exception is on the result cown; if body_exc is not NULL
 * it also receives a new reference to it), else 0.  While the dispatch is
 * cancelling, the behavior is dropped instead (returns 0). */
int boc_behavior_run(boc_behavior_t *b, PyObject **body_exc);

/* How many behavior bodies (or C bodies) this thread is inside right now:
 * waiting calls (wait, quiesce, pump) refuse to run from one. */
int boc_behavior_depth(void);

/* Retires a behavior that will never run (runtime torn down, or the exit
 * after an interrupt): its result cown gets RuntimeError(message).  Any
 * thread holding some interpreter's GIL. */
void boc_behavior_drop(boc_behavior_t *b, const char *message);

/* Bytes of one record for a behavior over ncowns cowns (benchmarks). */
size_t boc_behavior_record_size(int32_t nargs, int32_t ncowns);

#endif /* BOCPY_CORE_BEHAVIOR_H */

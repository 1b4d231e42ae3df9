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
/* The ABI 1.1 body (schedule_call): returns the result value (new
 * reference) or NULL with an exception; gets the plugin's module of the
 * running interpreter and the scheduled arguments rebuilt there. */
typedef PyObject *(*boc_cfn_call_t)(PyObject *module, PyObject **cowns,
                                    Py_ssize_t n, PyObject *args, void *ctx);
typedef struct boc_cfn {
  boc_cfn_body_t fn;    /* a 1.0 body, or NULL */
  boc_cfn_call_t call;  /* a 1.1 body, or NULL */
  char *module;         /* 1.1: the plugin's module name (malloc'd) */
  boc_payload_t *args;  /* 1.1: the arguments tuple, or NULL */
  void *ctx;
  void (*free_ctx)(void *ctx); /* may be NULL */
} boc_cfn_t;

/* Frees a cfn record: calls free_ctx(ctx) once, frees module and args. */
void boc_cfn_free(boc_cfn_t *cfn);

/* One value of a module-level global read by behavior bodies, encoded once
 * and shared (reference-counted) by every behavior that reads it while it is
 * unchanged, so that a worker decodes it once, not once per behavior (see
 * docs/behavior_code.md, "Module-level data").  Immutable once made. */
enum {
  BOC_GVAL_IMMUTABLE = 0, /* deeply immutable: identity is enough */
  BOC_GVAL_LIST = 1,      /* a list of deeply immutable items */
  BOC_GVAL_DICT = 2,      /* a dict of deeply immutable keys and values */
  BOC_GVAL_OTHER = 3,     /* anything else: never reused */
};
typedef struct boc_gval {
  _Atomic intptr_t refs;
  uint64_t version;       /* unique per encoding, process-wide */
  boc_payload_t *payload; /* owned */
  int kind;               /* BOC_GVAL_*: how a worker checks its copy */
  char name[];            /* the global's name, UTF-8 */
} boc_gval_t;

/* A new record (one reference) for name, taking ownership of payload (also
 * on failure: NULL with MemoryError). */
boc_gval_t *boc_gval_new(const char *name, boc_payload_t *payload, int kind);
void boc_gval_decref(boc_gval_t *g);
static inline void boc_gval_incref(boc_gval_t *g) {
  /* relaxed: the caller already holds a reference */
  atomic_fetch_add_explicit(&g->refs, 1, BOC_RELAXED);
}

/* 1 when obj still has the contents recorded in shallow (a list or dict
 * copy made when obj was shipped; None for an immutable value): same size
 * and identical items.  The items of a shipped list or dict are deeply
 * immutable, so identical items mean identical contents. */
int boc_gval_unchanged(PyObject *obj, PyObject *shallow);
/* Deeply immutable (None, bool, int, float, complex, str, bytes, cown
 * handles, and exact tuples and frozensets of those, nested up to depth). */
int boc_deeply_immutable(PyObject *obj, int depth);
/* The shallow copy boc_gval_unchanged compares with: a new list or dict for
 * those kinds, else a new reference to None; NULL with an exception. */
PyObject *boc_gval_shallow(PyObject *obj, int kind);

/* Most entries in each interpreter's per-code caches (the @when plan cache
 * and the worker's function cache); the oldest quarter is dropped when one
 * is full.  Process-wide, settable for tests (_core._set_cache_limit). */
Py_ssize_t boc_cache_limit(void);
void boc_set_cache_limit(Py_ssize_t n);
/* Drops the oldest quarter of an insertion-ordered dict (at least one). */
int boc_cache_trim(PyObject *dict);

/* bocpy.map: the completion latch of one map() call, shared by its chunk
 * behaviors (one reference each) and the caller (one reference).  A chunk
 * marks itself done when its record is freed, whether it ran or was
 * dropped, so a waiter never waits for a chunk that is gone. */
typedef struct boc_bulk_latch boc_bulk_latch_t;

/* A latch for n chunks (one reference); NULL with MemoryError. */
boc_bulk_latch_t *boc_bulk_latch_new(int64_t n);
void boc_bulk_latch_decref(boc_bulk_latch_t *l);
/* Waits (no GIL needed; call it with the GIL released) until chunk index is
 * done or timeout_ns passes (< 0: forever).  1 when done, 0 on timeout. */
int boc_bulk_latch_wait(boc_bulk_latch_t *l, int64_t index,
                        int64_t timeout_ns);

/* What makes a behavior a chunk of bocpy.map: its body function is called
 * once per item, fn(item), in order, and its result is the list of the
 * return values (or the first exception, as for @when). */
typedef struct boc_bulk {
  boc_payload_t *items;    /* a tuple, owned */
  boc_bulk_latch_t *latch; /* one reference */
  int64_t index;           /* this chunk's place in the latch */
} boc_bulk_t;

typedef struct boc_behavior {
  boc_bhdr_t hdr;
  boc_code_t *code; /* NULL for a C behavior */
  boc_cfn_t *cfn;   /* C behaviors only (malloc'd), else NULL */
  boc_bulk_t *bulk; /* chunks of bocpy.map only (malloc'd), else NULL */
  struct boc_scope *scope; /* the scope it belongs to (strong), or NULL */
  boc_payload_t *captures; /* (cells, extras) or NULL for none */
  boc_gval_t **globals;    /* module globals the body reads (in the record) */
  boc_cown_t *result;
  int32_t nargs;   /* @when arguments */
  int32_t ncowns;  /* cowns over all arguments (groups flattened) */
  int32_t nreqs;   /* distinct cowns incl. the result, after dedup */
  int32_t nglobals; /* entries in globals */
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
 * lists/tuples of handles) with a fresh result cown: one allocation holds
 * the record, its request array, the flattened cowns, the argument shapes
 * and the globals array.  Takes a reference to code; takes ownership of
 * captures and of the nglobals references in globals (also on failure).
 * NULL with TypeError on a bad argument. */
boc_behavior_t *boc_behavior_new(boc_code_t *code, PyObject *args,
                                 boc_payload_t *captures,
                                 boc_gval_t *const *globals, int32_t nglobals);
/* 0 when a is a cown handle or a list/tuple of handles, else -1 with the
 * TypeError @when raises for argument position pos (0-based). */
int boc_behavior_check_arg(PyObject *a, Py_ssize_t pos);
/* Likewise for a C body: takes ownership of cfn (a malloc'd record; its
 * free_ctx runs and it is freed also on failure).  The body receives the
 * flattened cown handles. */
boc_behavior_t *boc_behavior_new_cfn(PyObject *args, boc_cfn_t *cfn);

/* Makes b (a behavior over no cowns, not yet scheduled) a chunk of
 * bocpy.map: takes ownership of items (a tuple's payload; also on failure)
 * and a new reference to latch.  0, or -1 with MemoryError (b unchanged
 * but items freed). */
int boc_behavior_set_bulk(boc_behavior_t *b, boc_payload_t *items,
                          boc_bulk_latch_t *latch, int64_t index);

/* Frees a behavior that was never scheduled (boc_behavior_new's result). */
void boc_behavior_drop_unscheduled(boc_behavior_t *b);

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
/* Likewise, for an external executor (executor.h): when call is not NULL, a
 * Python body is not called but handed to call(fn, args, nargs, result),
 * where fn is the body rebuilt on this interpreter, args its positional
 * arguments (the first nargs are the @when arguments: a cown handle, held
 * now, or a list of them; then the captured extras) and result the handle
 * of the result cown; what call returns is stored as the result and what it
 * leaves in the cowns is released as their values, exactly as for a body.
 * A C body runs here as with boc_behavior_run, after call(None, (cown
 * handles...), ncowns, result) has made the held cowns' values real on this
 * interpreter (its return value is ignored; if it raises, the body does not
 * run and the exception goes to the result cown). */
int boc_behavior_run_via(boc_behavior_t *b, PyObject *call,
                         PyObject **body_exc);

/* How many behavior bodies (or C bodies) this thread is inside right now:
 * waiting calls (wait, quiesce, pump) refuse to run from one. */
int boc_behavior_depth(void);

/* Retires a behavior that will never run (runtime torn down, or the exit
 * after an interrupt): its result cown gets RuntimeError(message).  Any
 * thread holding some interpreter's GIL. */
void boc_behavior_drop(boc_behavior_t *b, const char *message);

/* Cancels the behavior whose result cown is result, if it has not started
 * (Future.cancel): it is then retired without running when it becomes
 * ready, its result holding CancelledError.  Returns 1 when it is
 * cancelled (by this call or an earlier one), 0 when it has started or
 * finished, or result is not the result of a scheduled behavior. */
int boc_behavior_cancel(boc_cown_t *result);

/* Bytes of one record for a behavior over ncowns cowns reading nglobals
 * module globals (benchmarks). */
size_t boc_behavior_record_size(int32_t nargs, int32_t ncowns,
                                int32_t nglobals);

#endif /* BOCPY_CORE_BEHAVIOR_H */

/* request.h - two-phase locking over per-cown MCS queues.
 *
 * Every behavior owns one request per distinct cown it needs (its result cown
 * included).  Linking a behavior appends each request to its cown's queue in
 * one global order (ascending key = cown id), and the behavior becomes ready
 * once it is at the head of every queue.  Because each behavior's appends
 * appear atomic to every other behavior (phase 2 below), no two behaviors can
 * wait on each other: deadlock freedom by construction.
 *
 * This file knows nothing of Python, cown values or behavior bodies: a cown
 * is a boc_slot_t (its queue tail) plus a key; a behavior is a boc_waiter_t
 * (its pending counter).  The caller maps a waiter back to its behavior.
 */
#ifndef BOCPY_CORE_REQUEST_H
#define BOCPY_CORE_REQUEST_H

#include "engine/platform.h"

/* The per-cown part: the tail of the cown's request queue (NULL = idle). */
typedef struct boc_slot {
  _Atomic(struct boc_request *) last;
} boc_slot_t;

/* The per-behavior part: how many requests (plus one guard) are still
 * unresolved.  Embedded in the behavior's scheduler-owned header. */
typedef struct boc_waiter {
  _Atomic int32_t pending;
} boc_waiter_t;

typedef struct boc_request {
  boc_slot_t *slot;                   /* the cown's queue */
  uint64_t key;                       /* global total order: the cown id */
  boc_waiter_t *owner;                /* the behavior this request belongs to */
  _Atomic(boc_waiter_t *) next;       /* successor behavior on this cown */
  _Atomic(int32_t) scheduled;         /* owner finished phase 1 */
} boc_request_t;

/* Called when a behavior holds every cown it asked for.  May run on the
 * linking thread (inside boc_requests_link) or on the thread releasing the
 * predecessor (inside boc_requests_release). */
typedef void (*boc_ready_fn)(boc_waiter_t *waiter, void *ctx);

/* Fills a request (slot, key, owner); next/scheduled are reset. */
void boc_request_init(boc_request_t *r, boc_slot_t *slot, uint64_t key,
                      boc_waiter_t *owner);

/* Sorts reqs by key and drops later duplicates of a key (a cown named twice
 * would otherwise queue behind itself).  Returns the new count. */
int boc_requests_prepare(boc_request_t *reqs, int n);

/* Links a prepared request array owned by waiter: phase 1 appends each
 * request to its cown's queue, phase 2 marks them scheduled, then the guard
 * is dropped.  ready(waiter, ctx) is called exactly once, when every cown is
 * held: possibly before this returns.  Never blocks except for a bounded spin
 * on a predecessor that is itself between its phase 1 and phase 2. */
void boc_requests_link(boc_waiter_t *waiter, boc_request_t *reqs, int n,
                       boc_ready_fn ready, void *ctx);

/* After the owner ran: hands every cown to its successor (calling ready for
 * successors that thereby hold everything).  reqs may be freed afterwards. */
void boc_requests_release(boc_request_t *reqs, int n, boc_ready_fn ready,
                          void *ctx);

#endif /* BOCPY_CORE_REQUEST_H */

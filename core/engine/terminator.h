/* terminator.h - termination counting for wait() and quiesce().
 *
 * count = seed (0 or 1) + behaviors between "scheduled" and "retired".
 * Scheduling increments before linking (and undoes it if scheduling fails);
 * retirement decrements.  wait()/quiesce() drop the seed and block until the
 * count reaches zero; quiesce() then restores the seed, so it is a
 * checkpoint, not a shutdown.  Once closed, increments fail.
 *
 * Several threads may wait at once (timed or not): each arrives with
 * boc_term_enter and leaves with boc_term_leave; the first to arrive drops
 * the seed and the last to leave restores it, so one waiter giving up
 * (a timeout) never takes the seed back from under another.
 */
#ifndef BOCPY_CORE_TERMINATOR_H
#define BOCPY_CORE_TERMINATOR_H

#include "engine/platform.h"

typedef struct boc_terminator {
  boc_mutex_t mu;
  boc_cond_t cv;     /* broadcast at zero and on boc_term_kick */
  _Atomic int64_t count;
  _Atomic int32_t seeded;  /* 1 while the seed is part of count */
  _Atomic int32_t closed;  /* 1: no more increments */
  _Atomic uint64_t kicks;  /* bumped by boc_term_kick */
  int32_t waiters;         /* between boc_term_enter and _leave; under mu */
} boc_terminator_t;

int boc_term_init(boc_terminator_t *t);
void boc_term_destroy(boc_terminator_t *t);

/* Start of a runtime: count = 1 (the seed), open.  Returns -1 (and changes
 * nothing) if the previous run left work behind (count != 0 while seeded is
 * 0, or count != 1 while seeded). */
int boc_term_reset(boc_terminator_t *t);

/* One more behavior in flight.  Returns -1 if closed (nothing changed). */
int boc_term_inc(boc_terminator_t *t);
/* One behavior retired. */
void boc_term_dec(boc_terminator_t *t);

/* Drops the seed if it is held; returns 1 if this call dropped it. */
int boc_term_seed_dec(boc_terminator_t *t);
/* Restores the seed (after a quiesce that dropped it). */
void boc_term_seed_inc(boc_terminator_t *t);

/* A waiter arrives: the first one drops the seed (boc_term_seed_dec). */
void boc_term_enter(boc_terminator_t *t);
/* A waiter leaves.  The last one restores the seed when restore is
 * non-zero (a quiesce, or a wait that timed out or was interrupted); a
 * wait() that tears the runtime down passes 0.  Returns the waiters left. */
int boc_term_leave(boc_terminator_t *t, int restore);
/* Waiters between enter and leave now. */
int boc_term_waiters(boc_terminator_t *t);

/* Waits until count == 0, at most timeout_ns (negative: forever), or until
 * a kick arrives after *kick_seen (pass NULL to ignore kicks).  Returns
 * 0 at zero, 1 on timeout, 2 when kicked. */
int boc_term_wait(boc_terminator_t *t, int64_t timeout_ns,
                  uint64_t *kick_seen);
/* Wakes every waiter (e.g. pinned work arrived for the main thread). */
void boc_term_kick(boc_terminator_t *t);

void boc_term_close(boc_terminator_t *t);
int boc_term_is_closed(const boc_terminator_t *t);
int64_t boc_term_count(const boc_terminator_t *t);

#endif /* BOCPY_CORE_TERMINATOR_H */

/* fuzz_request.c - libFuzzer target for core/request.c.
 *
 * Drives two-phase locking over per-cown request queues from one thread,
 * deterministically, with the operations the input bytes spell, and checks
 * every step against a model of BoC's ordering rules:
 *
 *   (1) a behavior becomes ready (and runs) only when every behavior
 *       scheduled before it that names one of its cowns has completed;
 *   (2) no lost hand-off: once the operation in progress (link or release)
 *       has returned, every behavior whose earlier conflicting behaviors
 *       have all completed is ready;
 *   (3) the ready callback fires exactly once per behavior;
 *   (4) two ready-but-not-completed behaviors never share a cown.
 *
 * plus the request API's own contract: prepare sorts by key and drops
 * duplicate keys, a cown's slot is the tail of its queue (NULL = idle), and
 * a request's `next` is its successor on that cown once the successor has
 * linked.  Each behavior and its request array are separate heap blocks,
 * freed as soon as release returns, so ASan reports any use after release.
 *
 * Input: byte 0 chooses the number of cowns (1-16), byte 1 seeds the
 * permutation that gives each cown its key.  Then operations, one op byte
 * each:
 *   0x00-0x7f  SCHEDULE: k = (op % 7) cown bytes follow (each taken modulo
 *              the number of cowns; duplicates allowed).  Builds a behavior
 *              on those cowns, prepares and links it.  Skipped when 64
 *              behaviors are live.
 *   0x80-0xbf  COMPLETE: runs the (op & 0x3f)-th ready behavior, modulo
 *              the number ready, and releases it.
 *   0xc0-0xff  COMPLETE as above, but while its release runs every ready
 *              callback executes the next operation of the input itself
 *              (nesting at most MAX_DEPTH deep).  This is what another
 *              worker could do at that moment: run the behavior that was
 *              just handed its cowns, release it, or link new ones, while
 *              the first release is still walking its requests.
 * At the end every behavior still ready is run, until none is left.
 *
 * Single-threaded use never reaches the engine's spin loops (a predecessor
 * has always finished its phase 2 before anyone can link behind it, and a
 * successor publishes `next` before link returns); the checks before each
 * link and release turn a state that would spin forever into a failure. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
  MAX_COWNS = 16,
  MAX_LIVE = 64,
  MAX_SET = 6,
  MAX_DEPTH = 4,
};

typedef enum { WAITING, READY, RETIRING } beh_state_t;

typedef struct beh {
  boc_waiter_t w; /* first member: a waiter pointer is a behavior pointer */
  uint64_t seq;   /* schedule (link) order */
  uint32_t mask;  /* the distinct cowns it names */
  beh_state_t state;
  int n;               /* requests after prepare */
  boc_request_t *reqs; /* its own block, freed right after release */
} beh_t;

typedef struct world {
  const uint8_t *in;
  size_t len;
  size_t pos;
  int ncowns;
  uint64_t key[MAX_COWNS];
  boc_slot_t slots[MAX_COWNS];
  beh_t *live[MAX_LIVE]; /* linked, not yet released; in seq order */
  int nlive;
  beh_t *ready[MAX_LIVE]; /* ready, not yet run; in the order they became so */
  int nready;
  uint64_t next_seq;
  uint64_t scheduled;
  uint64_t ready_calls;
  uint64_t completed;
  int depth;     /* operations currently nested inside ready callbacks */
  int reentrant; /* > 0: ready callbacks run the next operation themselves */
} world_t;

/* ---- failures ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static _Noreturn void
fail(int line, const char *cond, const char *fmt, ...) {
  fprintf(stderr, "fuzz_request.c:%d: check failed: %s\n  ", line, cond);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fail(__LINE__, #cond, __VA_ARGS__);                                      \
    }                                                                          \
  } while (0)

/* ---- helpers --------------------------------------------------------------- */

static unsigned long long id(const beh_t *b) {
  return (unsigned long long)b->seq;
}

static boc_request_t *tail_of(world_t *w, int c) {
  /* relaxed: single-threaded */
  return atomic_load_explicit(&w->slots[c].last, BOC_RELAXED);
}

static int live_index(const world_t *w, const beh_t *b) {
  for (int i = 0; i < w->nlive; i++) {
    if (w->live[i] == b) {
      return i;
    }
  }
  return -1;
}

static int cown_of_key(const world_t *w, uint64_t key) {
  for (int c = 0; c < w->ncowns; c++) {
    if (w->key[c] == key) {
      return c;
    }
  }
  return -1;
}

/* b's request on cown c (b is prepared, so there is at most one). */
static boc_request_t *request_on(world_t *w, beh_t *b, int c) {
  for (int i = 0; i < b->n; i++) {
    if (b->reqs[i].slot == &w->slots[c]) {
      return &b->reqs[i];
    }
  }
  return NULL;
}

static int first_cown(uint32_t mask) {
  for (int c = 0; c < MAX_COWNS; c++) {
    if (mask & (1u << c)) {
      return c;
    }
  }
  return -1;
}

/* The model for a behavior that becomes ready or starts running: every
 * earlier behavior on one of its cowns has completed (is releasing or gone),
 * rule (1), and no other ready behavior shares a cown, rule (4). */
static void check_may_hold(world_t *w, beh_t *b, const char *what) {
  int i = live_index(w, b);
  for (int j = 0; j < w->nlive; j++) {
    beh_t *o = w->live[j];
    uint32_t shared = o->mask & b->mask;
    if (o == b || shared == 0) {
      continue;
    }
    CHECK(j > i || o->state == RETIRING,
          "rule 1: behavior #%llu %s while earlier behavior #%llu on cown %d "
          "has not completed",
          id(b), what, id(o), first_cown(shared));
    CHECK(o->state != READY,
          "rule 4: behavior #%llu %s while behavior #%llu, ready on the same "
          "cown %d, has not completed",
          id(b), what, id(o), first_cown(shared));
  }
}

/* A slot is the tail of its cown's queue: the request of the latest live
 * behavior naming the cown, or NULL when there is none.  A behavior in the
 * middle of its release may or may not have let go of it yet. */
static void check_tail(world_t *w, int c) {
  boc_request_t *last = tail_of(w, c);
  for (int j = w->nlive - 1; j >= 0; j--) {
    beh_t *o = w->live[j];
    if (o->mask & (1u << c)) {
      boc_request_t *r = request_on(w, o, c);
      CHECK(last == r || (o->state == RETIRING && last == NULL),
            "cown %d: slot tail is %p, expected behavior #%llu's request %p",
            c, (void *)last, id(o), (void *)r);
      return;
    }
  }
  CHECK(last == NULL, "cown %d: no live behavior names it, but its slot "
        "tail is %p (not idle)", c, (void *)last);
}

/* ---- the operations ------------------------------------------------------ */

static void step(world_t *w);

static void on_ready(boc_waiter_t *waiter, void *ctx) {
  world_t *w = ctx;
  beh_t *b = (beh_t *)waiter;
  /* Compare the pointer before reading through it: a stale waiter is a
   * behavior that was already released (and freed). */
  CHECK(live_index(w, b) >= 0,
        "ready callback for %p, which is no live behavior (never scheduled, "
        "or already released)", (void *)waiter);
  CHECK(b->state == WAITING, "rule 3: behavior #%llu became ready twice",
        id(b));
  check_may_hold(w, b, "became ready");
  b->state = READY;
  w->ready[w->nready++] = b;
  w->ready_calls++;
  if (w->reentrant > 0 && w->depth < MAX_DEPTH && w->pos < w->len) {
    w->depth++;
    step(w);
    w->depth--;
  }
}

/* prepare's contract: keys strictly ascending, one request per distinct cown
 * named, each request filled in and not yet linked. */
static void check_prepared(world_t *w, beh_t *b, int k) {
  CHECK(b->n >= 0 && b->n <= k, "prepare returned %d for %d requests", b->n,
        k);
  uint32_t seen = 0;
  for (int i = 0; i < b->n; i++) {
    boc_request_t *r = &b->reqs[i];
    CHECK(i == 0 || b->reqs[i - 1].key < r->key,
          "prepare: keys not strictly ascending at %d of %d", i, b->n);
    int c = cown_of_key(w, r->key);
    CHECK(c >= 0 && r->slot == &w->slots[c],
          "prepare: request %d has key %#llx but slot %p", i,
          (unsigned long long)r->key, (void *)r->slot);
    CHECK(r->owner == &b->w, "prepare: request %d lost its owner", i);
    /* relaxed: single-threaded */
    CHECK(atomic_load_explicit(&r->next, BOC_RELAXED) == NULL &&
              atomic_load_explicit(&r->scheduled, BOC_RELAXED) == 0,
          "prepare: request %d is not fresh", i);
    seen |= 1u << c;
  }
  CHECK(seen == b->mask, "prepare: cowns kept %#x, cowns named %#x",
        (unsigned)seen, (unsigned)b->mask);
}

static void schedule(world_t *w, const int *cowns, int k) {
  if (w->nlive == MAX_LIVE) {
    return;
  }
  beh_t *b = calloc(1, sizeof(*b));
  CHECK(b != NULL, "out of memory");
  b->reqs = malloc(sizeof(boc_request_t) * (size_t)(k > 0 ? k : 1));
  CHECK(b->reqs != NULL, "out of memory");
  for (int i = 0; i < k; i++) {
    boc_request_init(&b->reqs[i], &w->slots[cowns[i]], w->key[cowns[i]],
                     &b->w);
    b->mask |= 1u << cowns[i];
  }
  b->n = boc_requests_prepare(b->reqs, k);
  check_prepared(w, b, k);
  b->seq = w->next_seq++;
  b->state = WAITING;
  w->live[w->nlive++] = b;
  w->scheduled++;
  /* Linking behind a tail whose owner has not finished its phase 2 would
   * spin forever here: nobody else is running. */
  for (int c = 0; c < w->ncowns; c++) {
    if (b->mask & (1u << c)) {
      boc_request_t *last = tail_of(w, c);
      /* relaxed: single-threaded */
      CHECK(last == NULL ||
                atomic_load_explicit(&last->scheduled, BOC_RELAXED) == 1,
            "cown %d: linking behind a request whose owner never finished "
            "linking", c);
    }
  }
  /* b may be ready, run and freed before this returns (reentrant mode). */
  boc_requests_link(&b->w, b->reqs, b->n, on_ready, w);
}

static void complete(world_t *w, unsigned k, bool reentrant) {
  if (w->nready == 0) {
    return;
  }
  int idx = (int)(k % (unsigned)w->nready);
  beh_t *b = w->ready[idx];
  memmove(&w->ready[idx], &w->ready[idx + 1],
          sizeof(beh_t *) * (size_t)(w->nready - idx - 1));
  w->nready--;
  CHECK(b->state == READY, "behavior #%llu runs without being ready", id(b));
  check_may_hold(w, b, "runs");
  /* Each request's next must be the following live behavior on that cown,
   * or else (nobody behind) the slot's tail must be the request itself:
   * release would otherwise wait forever for a successor to appear. */
  int i = live_index(w, b);
  for (int r = 0; r < b->n; r++) {
    boc_request_t *req = &b->reqs[r];
    int c = cown_of_key(w, req->key);
    CHECK(c >= 0, "behavior #%llu: request %d's key changed", id(b), r);
    beh_t *succ = NULL;
    for (int j = i + 1; j < w->nlive && succ == NULL; j++) {
      if (w->live[j]->mask & (1u << c)) {
        succ = w->live[j];
      }
    }
    /* relaxed: single-threaded */
    boc_waiter_t *next = atomic_load_explicit(&req->next, BOC_RELAXED);
    if (succ != NULL) {
      CHECK(next == &succ->w,
            "cown %d: behavior #%llu's successor is #%llu but next is %p", c,
            id(b), id(succ), (void *)next);
    } else {
      CHECK(next == NULL && tail_of(w, c) == req,
            "cown %d: behavior #%llu has no successor but next is %p and the "
            "tail %p is not its request", c, id(b), (void *)next,
            (void *)tail_of(w, c));
    }
  }
  b->state = RETIRING;
  if (reentrant) {
    w->reentrant++;
  }
  boc_requests_release(b->reqs, b->n, on_ready, w);
  if (reentrant) {
    w->reentrant--;
  }
  i = live_index(w, b); /* nested operations may have moved it */
  CHECK(i >= 0, "behavior #%llu vanished while releasing", id(b));
  memmove(&w->live[i], &w->live[i + 1],
          sizeof(beh_t *) * (size_t)(w->nlive - i - 1));
  w->nlive--;
  w->completed++;
  free(b->reqs);
  free(b);
}

/* After a top-level operation (every link and release has returned). */
static void check_world(world_t *w) {
  int nready = 0;
  for (int i = 0; i < w->nlive; i++) {
    beh_t *b = w->live[i];
    CHECK(b->state != RETIRING, "behavior #%llu still releasing", id(b));
    beh_t *blocker = NULL;
    for (int j = 0; j < i && blocker == NULL; j++) {
      if (w->live[j]->mask & b->mask) {
        blocker = w->live[j];
      }
    }
    if (blocker != NULL) {
      CHECK(b->state == WAITING,
            "rule 1: behavior #%llu is ready while earlier behavior #%llu "
            "on cown %d has not completed",
            id(b), id(blocker), first_cown(blocker->mask & b->mask));
    } else {
      CHECK(b->state == READY,
            "rule 2: behavior #%llu is not ready although every earlier "
            "behavior on its cowns has completed (lost hand-off)",
            id(b));
      nready++;
    }
  }
  CHECK(nready == w->nready, "%d behaviors ready, %d in the ready set",
        nready, w->nready);
  for (int c = 0; c < w->ncowns; c++) {
    check_tail(w, c);
  }
}

static uint8_t next_byte(world_t *w) {
  return w->pos < w->len ? w->in[w->pos++] : 0;
}

static void step(world_t *w) {
  uint8_t op = next_byte(w);
  if (op < 0x80) {
    int k = op % (MAX_SET + 1);
    int cowns[MAX_SET];
    for (int i = 0; i < k; i++) {
      cowns[i] = next_byte(w) % w->ncowns;
    }
    schedule(w, cowns, k);
  } else {
    complete(w, op & 0x3fu, op >= 0xc0);
  }
}

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) {
    return 0;
  }
  world_t w;
  memset(&w, 0, sizeof(w));
  w.in = data;
  w.len = size;
  w.pos = 2;
  w.ncowns = 1 + data[0] % MAX_COWNS;
  /* Keys are a permutation of 0-15 in the top four bits (so half of them
   * exceed INT64_MAX and all share their low 60 bits): key order differs
   * from slot order, and only a full unsigned 64-bit compare sorts them. */
  int perm[MAX_COWNS];
  for (int c = 0; c < MAX_COWNS; c++) {
    perm[c] = c;
  }
  uint64_t rng = 0x9E3779B97F4A7C15ULL * ((uint64_t)data[1] + 1);
  for (int c = MAX_COWNS - 1; c > 0; c--) {
    int j = (int)(xorshift(&rng) % (uint64_t)(c + 1));
    int t = perm[c];
    perm[c] = perm[j];
    perm[j] = t;
  }
  for (int c = 0; c < MAX_COWNS; c++) {
    w.key[c] = ((uint64_t)perm[c] << 60) | 0x0123456789ABCDEULL;
    atomic_init(&w.slots[c].last, NULL);
  }

  while (w.pos < w.len) {
    step(&w);
    check_world(&w);
  }
  /* Drain: with every link done, nothing may stay blocked for ever. */
  while (w.nready > 0) {
    complete(&w, 0, false);
    check_world(&w);
  }
  CHECK(w.nlive == 0, "behavior #%llu never became ready (stuck)",
        id(w.live[0]));
  CHECK(w.completed == w.scheduled && w.ready_calls == w.scheduled,
        "%llu scheduled, %llu ready callbacks, %llu completed",
        (unsigned long long)w.scheduled, (unsigned long long)w.ready_calls,
        (unsigned long long)w.completed);
  for (int c = 0; c < w.ncowns; c++) {
    CHECK(tail_of(&w, c) == NULL, "cown %d not idle at the end", c);
  }
  return 0;
}

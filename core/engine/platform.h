/* platform.h - the operating-system layer the runtime is built on.
 *
 * Everything here is plain C11 + POSIX and knows nothing about Python, so the
 * cmocka tests can exercise it without an interpreter.  The rest of core/
 * never includes <pthread.h> or <time.h> itself: it goes through this file.
 */
#ifndef BOCPY_CORE_PLATFORM_H
#define BOCPY_CORE_PLATFORM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- atomics ------------------------------------------------------------
 * We use <stdatomic.h> directly with explicit memory orders at each call
 * site; these short names exist only so lines stay readable. */
#define BOC_RELAXED memory_order_relaxed
#define BOC_ACQUIRE memory_order_acquire
#define BOC_RELEASE memory_order_release
#define BOC_ACQ_REL memory_order_acq_rel
#define BOC_SEQ_CST memory_order_seq_cst

/* A hint to the CPU that we are spinning (PAUSE on x86, YIELD on Arm). */
static inline void boc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#else
  atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Give the rest of this time slice to another thread. */
void boc_thread_yield(void);

/* ---- mutex / condition variable ----------------------------------------- */
typedef struct boc_mutex {
  pthread_mutex_t m;
} boc_mutex_t;

typedef struct boc_cond {
  pthread_cond_t c; /* bound to CLOCK_MONOTONIC */
} boc_cond_t;

int boc_mutex_init(boc_mutex_t *m);
void boc_mutex_destroy(boc_mutex_t *m);
void boc_mutex_lock(boc_mutex_t *m);
void boc_mutex_unlock(boc_mutex_t *m);

int boc_cond_init(boc_cond_t *c);
void boc_cond_destroy(boc_cond_t *c);
void boc_cond_wait(boc_cond_t *c, boc_mutex_t *m);
/* Waits at most timeout_ns (negative: forever).  Returns true if signalled or
 * woken spuriously, false if the time ran out.  Callers always re-check their
 * predicate, so the distinction is only a hint. */
bool boc_cond_timedwait(boc_cond_t *c, boc_mutex_t *m, int64_t timeout_ns);
void boc_cond_signal(boc_cond_t *c);
void boc_cond_broadcast(boc_cond_t *c);

/* ---- time ---------------------------------------------------------------- */
/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
int64_t boc_now_ns(void);
/* Sleep for at least ns nanoseconds. */
void boc_sleep_ns(int64_t ns);

/* ---- threads --------------------------------------------------------------- */
typedef struct boc_thread {
  pthread_t t;
} boc_thread_t;

typedef void (*boc_thread_fn)(void *arg);
/* Starts fn(arg) on a new joinable thread.  Returns 0 or an errno value. */
int boc_thread_start(boc_thread_t *t, boc_thread_fn fn, void *arg);
int boc_thread_join(boc_thread_t *t);

/* ---- one-time initialisation ---------------------------------------------- */
typedef pthread_once_t boc_once_t;
#define BOC_ONCE_INIT PTHREAD_ONCE_INIT
static inline void boc_once(boc_once_t *once, void (*fn)(void)) {
  pthread_once(once, fn);
}

/* ---- CPUs ------------------------------------------------------------------ */
/* Logical CPUs this process may run on (its affinity mask); at least 1. */
int boc_cpu_count_logical(void);

/* This process's id without a system call per use (getpid() is one in
 * current glibc, and payloads record it on every encoding): cached, and
 * refreshed in the child after fork() by a pthread_atfork handler. */
int64_t boc_process_id(void);
/* Physical cores among the CPUs of the affinity mask (hyper-threads of one
 * core count once), or the logical count when topology is unknown; >= 1. */
int boc_cpu_count_physical(void);
/* Parses a worker-count override such as the BOCPY_WORKERS environment
 * variable: returns the value if text is a decimal integer in [1, 4096],
 * otherwise 0.  NULL gives 0. */
int boc_parse_worker_count(const char *text);
/* The default worker count: the override when valid, else physical cores
 * minus one, never below one. */
int boc_default_worker_count(const char *override_text);

#endif /* BOCPY_CORE_PLATFORM_H */

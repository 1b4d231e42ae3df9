/* ctypes_bridge_helper.c - a tiny C library the ctypes bridge tests and the
 * benchmark compile and load with ctypes (tests/python/ctypes_bridge_support.py).
 * It counts destructor calls, records the thread that ran them, and gives
 * calls that can be seen overlapping in time. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Process-global on purpose: the tests read them from any interpreter. */
static atomic_long frees;
static atomic_ulong free_thread;
static atomic_long active, max_active, arrived;

/* A destructor: counts, notes the thread, says so on stderr (unbuffered,
 * so it shows even when the process is exiting), frees. */
void fbh_free(void *p) {
  char line[96];
  atomic_fetch_add(&frees, 1);
  atomic_store(&free_thread, (unsigned long)pthread_self());
  int n = snprintf(line, sizeof(line), "fbh_free %p thread %lu\n", p,
                   (unsigned long)pthread_self());
  if (n > 0 && write(2, line, (size_t)n) < 0) {
    /* nothing to do */
  }
  free(p);
}

long fbh_frees(void) { return atomic_load(&frees); }
unsigned long fbh_free_thread(void) { return atomic_load(&free_thread); }

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Spins for usec microseconds; tracks how many calls are inside at once. */
long fbh_busy(long usec) {
  long now = atomic_fetch_add(&active, 1) + 1;
  long seen = atomic_load(&max_active);
  while (now > seen && !atomic_compare_exchange_weak(&max_active, &seen, now)) {
  }
  double end = now_us() + (double)usec;
  volatile unsigned long spins = 0;
  while (now_us() < end) {
    spins++;
  }
  atomic_fetch_sub(&active, 1);
  return usec;
}

/* fbh_busy with a pointer argument (the pointer is not touched). */
long fbh_hold(void *p, long usec) {
  (void)p;
  return fbh_busy(usec);
}

long fbh_active(void) { return atomic_load(&active); }
long fbh_max_active(void) { return atomic_load(&max_active); }

void fbh_reset(void) {
  atomic_store(&max_active, 0);
  atomic_store(&arrived, 0);
}

/* Arrives, then waits (spinning) until `parties` calls have arrived or
 * timeout_ms passed: 1 when they met, i.e. the calls overlapped. */
int fbh_meet(int parties, long timeout_ms) {
  atomic_fetch_add(&arrived, 1);
  double end = now_us() + 1000.0 * (double)timeout_ms;
  while (atomic_load(&arrived) < parties) {
    if (now_us() > end) {
      return 0;
    }
  }
  return 1;
}

/* Argument and result conversions. */
double fbh_scale(double *p, long n, double k) {
  double s = 0;
  for (long i = 0; i < n; i++) {
    p[i] *= k;
    s += p[i];
  }
  return s;
}
long long fbh_add64(long long a, long long b) { return a + b; }
unsigned char fbh_u8_inc(unsigned char x) { return (unsigned char)(x + 1); }
signed char fbh_s8_neg(signed char x) { return (signed char)-x; }
unsigned short fbh_u16(unsigned short x) { return x; }
int fbh_i32(int x) { return x; }
unsigned int fbh_u32(unsigned int x) { return x; }
unsigned long long fbh_u64(unsigned long long x) { return x; }
float fbh_half(float x) { return x / 2; }
_Bool fbh_not(_Bool b) { return !b; }
char fbh_upper(char c) { return (c >= 'a' && c <= 'z') ? (char)(c - 32) : c; }
const char *fbh_echo(const char *s) { return s; }
void *fbh_ptr(void *p) { return p; }
void fbh_nothing(void) {}
long fbh_sum_bytes(const unsigned char *p, long n) {
  long s = 0;
  for (long i = 0; i < n; i++) {
    s += p[i];
  }
  return s;
}
void fbh_fill(unsigned char *p, long n, int v) { memset(p, v, (size_t)n); }
/* A struct type, to show that by-value structures are refused. */
struct fbh_pair { int a, b; };
int fbh_pair_sum(struct fbh_pair p) { return p.a + p.b; }

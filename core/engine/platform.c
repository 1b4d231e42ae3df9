/* platform.c - POSIX implementation of platform.h. */
#define _GNU_SOURCE
#include "engine/platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void boc_thread_yield(void) { sched_yield(); }

int boc_mutex_init(boc_mutex_t *m) { return pthread_mutex_init(&m->m, NULL); }
void boc_mutex_destroy(boc_mutex_t *m) { pthread_mutex_destroy(&m->m); }
void boc_mutex_lock(boc_mutex_t *m) { pthread_mutex_lock(&m->m); }
void boc_mutex_unlock(boc_mutex_t *m) { pthread_mutex_unlock(&m->m); }

int boc_cond_init(boc_cond_t *c) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc != 0) {
    return rc;
  }
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) {
    rc = pthread_cond_init(&c->c, &attr);
  }
  pthread_condattr_destroy(&attr);
  return rc;
}

void boc_cond_destroy(boc_cond_t *c) { pthread_cond_destroy(&c->c); }
void boc_cond_wait(boc_cond_t *c, boc_mutex_t *m) {
  pthread_cond_wait(&c->c, &m->m);
}
void boc_cond_signal(boc_cond_t *c) { pthread_cond_signal(&c->c); }
void boc_cond_broadcast(boc_cond_t *c) { pthread_cond_broadcast(&c->c); }

bool boc_cond_timedwait(boc_cond_t *c, boc_mutex_t *m, int64_t timeout_ns) {
  if (timeout_ns < 0) {
    pthread_cond_wait(&c->c, &m->m);
    return true;
  }
  int64_t deadline = boc_now_ns() + timeout_ns;
  if (deadline < 0) { /* overflow: treat as forever */
    pthread_cond_wait(&c->c, &m->m);
    return true;
  }
  struct timespec ts;
  ts.tv_sec = (time_t)(deadline / 1000000000LL);
  ts.tv_nsec = (long)(deadline % 1000000000LL);
  return pthread_cond_timedwait(&c->c, &m->m, &ts) != ETIMEDOUT;
}

int64_t boc_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void boc_sleep_ns(int64_t ns) {
  if (ns <= 0) {
    return;
  }
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000LL);
  ts.tv_nsec = (long)(ns % 1000000000LL);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* pthread wants void *(*)(void *); this trampoline adapts boc_thread_fn. */
typedef struct {
  boc_thread_fn fn;
  void *arg;
} thread_start_t;

static void *thread_trampoline(void *p) {
  thread_start_t start = *(thread_start_t *)p;
  free(p);
  start.fn(start.arg);
  return NULL;
}

int boc_thread_start(boc_thread_t *t, boc_thread_fn fn, void *arg) {
  thread_start_t *start = malloc(sizeof(*start));
  if (start == NULL) {
    return ENOMEM;
  }
  start->fn = fn;
  start->arg = arg;
  int rc = pthread_create(&t->t, NULL, thread_trampoline, start);
  if (rc != 0) {
    free(start);
  }
  return rc;
}

int boc_thread_join(boc_thread_t *t) { return pthread_join(t->t, NULL); }

int boc_cpu_count_logical(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) {
      return n;
    }
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* Reads one integer from a sysfs file; -1 when missing or malformed. */
static long read_sysfs_long(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return -1;
  }
  long value = -1;
  if (fscanf(f, "%ld", &value) != 1) {
    value = -1;
  }
  fclose(f);
  return value;
}

int boc_cpu_count_physical(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return boc_cpu_count_logical();
  }
  /* Distinct (package, core) pairs among the CPUs we may use. */
  enum { MAX_PAIRS = 1024 };
  static const int max_cpus = CPU_SETSIZE;
  long packages[MAX_PAIRS];
  long cores[MAX_PAIRS];
  int pairs = 0;
  for (int cpu = 0; cpu < max_cpus && pairs < MAX_PAIRS; cpu++) {
    if (!CPU_ISSET(cpu, &set)) {
      continue;
    }
    char path[128];
    snprintf(path, sizeof(path),
             "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
    long core = read_sysfs_long(path);
    snprintf(path, sizeof(path),
             "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
    long package = read_sysfs_long(path);
    if (core < 0 || package < 0) {
      return boc_cpu_count_logical();
    }
    bool seen = false;
    for (int i = 0; i < pairs; i++) {
      if (cores[i] == core && packages[i] == package) {
        seen = true;
        break;
      }
    }
    if (!seen) {
      cores[pairs] = core;
      packages[pairs] = package;
      pairs++;
    }
  }
  return pairs > 0 ? pairs : boc_cpu_count_logical();
}

int boc_parse_worker_count(const char *text) {
  if (text == NULL) {
    return 0;
  }
  while (*text == ' ' || *text == '\t') {
    text++;
  }
  if (*text == '\0') {
    return 0;
  }
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  while (*end == ' ' || *end == '\t' || *end == '\n') {
    end++;
  }
  if (errno != 0 || *end != '\0' || value < 1 || value > 4096) {
    return 0;
  }
  return (int)value;
}

int boc_default_worker_count(const char *override_text) {
  int n = boc_parse_worker_count(override_text);
  if (n > 0) {
    return n;
  }
  n = boc_cpu_count_physical() - 1;
  return n >= 1 ? n : 1;
}

/* ---- process id ------------------------------------------------------------ */

/* The cached pid (0: not read yet).  A process-wide value by nature; relaxed:
 * every thread computes the same value, and the fork child handler runs
 * while the child has one thread. */
static _Atomic int64_t cached_pid;

static void pid_after_fork(void) {
  atomic_store_explicit(&cached_pid, (int64_t)getpid(), memory_order_relaxed);
}

static void pid_init(void) {
  pthread_atfork(NULL, NULL, pid_after_fork);
  atomic_store_explicit(&cached_pid, (int64_t)getpid(), memory_order_relaxed);
}

int64_t boc_process_id(void) {
  int64_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
  if (pid == 0) {
    static pthread_once_t once = PTHREAD_ONCE_INIT; /* registers the handler once */
    pthread_once(&once, pid_init);
    pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
  }
  return pid;
}

/*
 * bench.h - shared plumbing of muser-bench: clocks, percentiles, and the
 * report format of the design notes (a table, or with --json one object a
 * line: bench, metric, value, unit, baseline, ratio = value / baseline).
 *
 * Machines here are noisy, so every metric is measured in several
 * repetitions, each of which runs the baseline and the muser path back to
 * back, and the median over repetitions is reported.
 */
#ifndef MUSER_BENCH_H
#define MUSER_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

extern bool bench_json;
extern int bench_reps;

uint64_t bench_now_ns(void);

/* Sorts samples in place; q in [0, 1]. */
double bench_percentile(uint64_t *samples, size_t n, double q);
/* Median of n doubles (sorts them). */
double bench_median(double *v, size_t n);

/* One result line. */
void bench_report(const char *bench, const char *metric, double value,
                  const char *unit, double baseline, const char *target);
/*
 * Two: <bench>_p50 and <bench>_p99 in us, each the median over n
 * repetitions of muser's per-repetition percentile in ns (m50, m99)
 * against the baseline's (b50, b99).  target is p50's; p99 has none.
 */
void bench_report_latency(const char *bench, double *m50, double *m99,
                          double *b50, double *b99, size_t n,
                          const char *target);

/*
 * CPU placement.  A wake-up on another CPU costs far more than a switch on
 * the same one (tens of microseconds on these VMs), and the scheduler does
 * not place a baseline's threads and muser's alike, so benchmarks pin both
 * the same way.  bench_cpus gives the first and last CPU we may use (equal
 * on a one-CPU machine, -1 when unknown); bench_pin pins the calling thread
 * and saves its mask for bench_unpin.  False when pinning is not possible.
 */
void bench_cpus(int *first, int *last);
bool bench_pin(int cpu, cpu_set_t *saved);
void bench_unpin(const cpu_set_t *saved);

/* A scratch directory for sockets; removed at exit. */
const char *bench_tmpdir(void);

/*
 * Start argv[0] with argv, its output in the file log, pinned to cpu when
 * cpu >= 0; it gets SIGKILL when this process dies.  Returns its pid or a
 * negative errno.
 */
pid_t bench_spawn(const char *const argv[], const char *log, int cpu);
/*
 * Collect the child *pid started by bench_spawn() (nothing when *pid <= 0):
 * waits 3 s for it to leave, then SIGTERM, after 5 s SIGKILL.  Returns its
 * wait status (0 for nothing to collect) and sets *pid to 0.
 */
int bench_reap(pid_t *pid);

int bench_rtt(void);
int bench_dma(void);
int bench_irq(void);
int bench_nvme(void);
int bench_soak(void);
int bench_scale(void);
/* nvme.c and migrate.c, built with the samples: */
int bench_migrate(void);
/* The nvme sample to run (--nvme, else next to this binary, else where
 * meson built it), in buf; NULL if none is found. */
const char *bench_nvme_path(char *buf, size_t len);

#endif

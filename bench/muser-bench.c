/*
 * muser-bench - measurements of muser against baselines taken in the same
 * run.  Usage: muser-bench [--json] [--reps N] BENCH|all (see usage())
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

bool bench_json;
int bench_reps = 5;

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

double bench_percentile(uint64_t *samples, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    qsort(samples, n, sizeof(*samples), cmp_u64);
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)samples[i];
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_dbl);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_report(const char *bench, const char *metric, double value,
                  const char *unit, double baseline, const char *target)
{
    double ratio = baseline > 0 ? value / baseline : 0;

    if (bench_json) {
        printf("{\"bench\": \"%s\", \"metric\": \"%s\", \"value\": %.3f, "
               "\"unit\": \"%s\", \"baseline\": %.3f, \"ratio\": %.3f}\n",
               bench, metric, value, unit, baseline, ratio);
    } else {
        printf("%-6s %-36s %14.3f %-6s %14.3f %8.3f  %s\n", bench, metric,
               value, unit, baseline, ratio, target ? target : "");
    }
    fflush(stdout);
}

void bench_report_latency(const char *bench, double *m50, double *m99,
                          double *b50, double *b99, size_t n,
                          const char *target)
{
    double base50 = bench_median(b50, n), base99 = bench_median(b99, n);
    char metric[64];

    snprintf(metric, sizeof(metric), "%s_p50", bench);
    bench_report(bench, metric, bench_median(m50, n) / 1000, "us",
                 base50 / 1000, target);
    snprintf(metric, sizeof(metric), "%s_p99", bench);
    bench_report(bench, metric, bench_median(m99, n) / 1000, "us",
                 base99 / 1000, NULL);
}

void bench_cpus(int *first, int *last)
{
    cpu_set_t set;

    *first = *last = -1;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return;
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            if (*first < 0)
                *first = i;
            *last = i;
        }
    }
}

bool bench_pin(int cpu, cpu_set_t *saved)
{
    cpu_set_t one;

    if (cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof(*saved),
                                          saved) != 0)
        return false;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

void bench_unpin(const cpu_set_t *saved)
{
    pthread_setaffinity_np(pthread_self(), sizeof(*saved), saved);
}

static char tmpdir[64];

static void remove_tmpdir(void)
{
    char cmd[128];

    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

const char *bench_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/muser-bench-XXXXXX");
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

static const struct {
    const char *name;
    int (*fn)(void);
} benches[] = {
    { "rtt", bench_rtt },
    { "irq", bench_irq },
    { "dma", bench_dma },
    { "soak", bench_soak },
    { "scale", bench_scale },
#ifdef HAVE_NVME_BENCH
    { "nvme", bench_nvme },
    { "migrate", bench_migrate },
#endif
};

#ifdef HAVE_NVME_BENCH
extern const char *bench_nvme_bin;      /* nvme.c */
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: muser-bench [--json] [--reps N] ");
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        fprintf(f, "%s|", benches[i].name);
    fprintf(f, "all\n"
               "  Each metric is the median of N repetitions (default 5); the\n"
               "  baseline is measured in the same repetitions.\n"
               "  scale: 1, 64 and 1024 contexts served by one thread: memory\n"
               "  and fds per idle context, connect time, round trip at N vs 1.\n");
#ifdef HAVE_NVME_BENCH
    fprintf(f, "  nvme: the nvme sample under 4 KiB random I/O; --nvme PATH runs\n"
               "  that nvme binary instead of the one built with this program.\n"
               "  migrate: downtime of migrating the nvme sample (64 MiB RAM\n"
               "  namespace) between two processes, against a socket copy.\n");
#endif
}

int main(int argc, char **argv)
{
    const char *which = NULL;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            bench_json = true;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            bench_reps = atoi(argv[++i]);
            if (bench_reps < 1 || bench_reps > 1000) {
                usage(stderr);
                return 2;
            }
#ifdef HAVE_NVME_BENCH
        } else if (strcmp(argv[i], "--nvme") == 0 && i + 1 < argc) {
            bench_nvme_bin = argv[++i];
#endif
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (which == NULL) {
            which = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (which == NULL) {
        usage(stderr);
        return 2;
    }
    if (!bench_json)
        printf("%-6s %-36s %14s %-6s %14s %8s  %s\n", "bench", "metric",
               "value", "unit", "baseline", "ratio", "target");
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
        if (strcmp(which, "all") == 0 || strcmp(which, benches[i].name) == 0) {
            int r = benches[i].fn();

            if (r != 0) {
                fprintf(stderr, "%s: failed: %s\n", benches[i].name, strerror(-r));
                rc = 1;
            }
            if (strcmp(which, "all") != 0)
                return rc;
        }
    }
    if (strcmp(which, "all") != 0 && rc == 0) {
        bool known = false;

        for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
            known |= strcmp(which, benches[i].name) == 0;
        if (!known) {
            usage(stderr);
            return 2;
        }
    }
    return rc;
}

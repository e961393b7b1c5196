/*
 * sysc.h - counting the system calls a child process makes (ptrace), for
 * figures that are counted rather than timed.
 *
 * A tracer thread attaches to the child (PTRACE_SEIZE, so the child need
 * not cooperate), stops it once and then resumes it from syscall stop to
 * syscall stop, counting every syscall entry by number.  The caller reads
 * the counts before and after the work it wants to measure.  The tracing
 * slows the child down a great deal: nothing timed may run meanwhile.
 */
#ifndef MUSER_BENCH_SYSC_H
#define MUSER_BENCH_SYSC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SYSC_NR_MAX 512         /* syscall numbers counted one by one */

struct sysc_counts {
    uint64_t total;
    uint64_t by_nr[SYSC_NR_MAX];    /* the rest only in total */
};

struct sysc_tracer {
    pid_t pid;
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool have_th;
    bool started, ready, done;  /* done: the tracer collected the child */
    int err;                    /* why it could not trace: -errno */
    struct sysc_counts counts;  /* under lock */
};

/*
 * Trace pid (a child of this process) from a new thread.  Returns 0 once
 * every syscall of pid is being counted, or -errno (-EPERM when ptrace is
 * not allowed here: the caller says so and skips its figure).  Either
 * way sysc_stop() ends it.
 */
int sysc_start(struct sysc_tracer *t, pid_t pid);
/* The counts so far. */
void sysc_read(struct sysc_tracer *t, struct sysc_counts *out);
/*
 * Kill the child (SIGKILL), collect it and end the tracer thread.
 */
void sysc_stop(struct sysc_tracer *t);
/* The name of syscall nr on this machine, or NULL for an unknown one. */
const char *sysc_name(unsigned nr);

#endif

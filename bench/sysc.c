/*
 * sysc.c - see sysc.h.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sysc.h"

static void set_state(struct sysc_tracer *t, bool ready, int err)
{
    pthread_mutex_lock(&t->lock);
    t->started = true;
    t->ready = ready;
    if (err != 0)
        t->err = err;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

/* One syscall stop: count it if it is an entry. */
static void on_syscall_stop(struct sysc_tracer *t)
{
    struct __ptrace_syscall_info info;

    memset(&info, 0, sizeof(info));
    if (ptrace(PTRACE_GET_SYSCALL_INFO, t->pid, (void *)sizeof(info),
               &info) <= 0 || info.op != PTRACE_SYSCALL_INFO_ENTRY)
        return;
    pthread_mutex_lock(&t->lock);
    t->counts.total++;
    if (info.entry.nr < SYSC_NR_MAX)
        t->counts.by_nr[info.entry.nr]++;
    pthread_mutex_unlock(&t->lock);
}

/*
 * The tracer: ptrace requests must all come from the thread that
 * attached, so everything happens here.  Runs until the child is gone.
 */
static void *tracer_main(void *arg)
{
    struct sysc_tracer *t = arg;
    bool ready = false;
    int st;

    if (ptrace(PTRACE_SEIZE, t->pid, NULL,
               (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0) {
        set_state(t, false, -errno);
        return NULL;
    }
    /* A stop, from which syscall stops begin. */
    if (ptrace(PTRACE_INTERRUPT, t->pid, NULL, NULL) < 0) {
        set_state(t, false, -errno);
        return NULL;
    }
    for (;;) {
        int sig = 0;

        if (waitpid(t->pid, &st, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            pthread_mutex_lock(&t->lock);
            t->done = true;     /* collected */
            pthread_mutex_unlock(&t->lock);
            break;
        }
        if (!WIFSTOPPED(st))
            continue;
        if (WSTOPSIG(st) == (SIGTRAP | 0x80))
            on_syscall_stop(t);
        else if ((st >> 16) == PTRACE_EVENT_STOP)
            ;   /* our interrupt, or a group stop: go on */
        else
            sig = WSTOPSIG(st);     /* a signal for the child: deliver */
        if (ptrace(PTRACE_SYSCALL, t->pid, NULL, (void *)(long)sig) < 0)
            break;
        if (!ready) {
            ready = true;
            set_state(t, true, 0);
        }
    }
    if (!ready)
        set_state(t, false, -ECHILD);
    return NULL;
}

int sysc_start(struct sysc_tracer *t, pid_t pid)
{
    int rc;

    memset(t, 0, sizeof(*t));
    t->pid = pid;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    rc = pthread_create(&t->th, NULL, tracer_main, t);
    if (rc != 0) {
        t->err = -rc;
        return -rc;
    }
    t->have_th = true;
    pthread_mutex_lock(&t->lock);
    while (!t->started)
        pthread_cond_wait(&t->cond, &t->lock);
    rc = t->ready ? 0 : t->err;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void sysc_read(struct sysc_tracer *t, struct sysc_counts *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->counts;
    pthread_mutex_unlock(&t->lock);
}

void sysc_stop(struct sysc_tracer *t)
{
    if (t->pid > 0)
        kill(t->pid, SIGKILL);
    /* The tracer collects the child when it sees it die; if it stopped
     * tracing before that (or never could), collect it here. */
    if (t->have_th)
        pthread_join(t->th, NULL);
    if (t->pid > 0 && !t->done)
        waitpid(t->pid, NULL, 0);
    t->pid = 0;
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
}

const char *sysc_name(unsigned nr)
{
    static const struct {
        long nr;
        const char *name;
    } names[] = {
#ifdef SYS_epoll_wait
        { SYS_epoll_wait, "epoll_wait" },
#endif
        { SYS_epoll_pwait, "epoll_pwait" },
#ifdef SYS_epoll_pwait2
        { SYS_epoll_pwait2, "epoll_pwait2" },
#endif
        { SYS_recvmsg, "recvmsg" }, { SYS_sendmsg, "sendmsg" },
        { SYS_recvfrom, "recvfrom" }, { SYS_sendto, "sendto" },
        { SYS_read, "read" }, { SYS_write, "write" },
#ifdef SYS_poll
        { SYS_poll, "poll" },
#endif
        { SYS_ppoll, "ppoll" }, { SYS_futex, "futex" },
        { SYS_clock_gettime, "clock_gettime" },
        { SYS_timerfd_settime, "timerfd_settime" },
        { SYS_setsockopt, "setsockopt" }, { SYS_close, "close" },
        { SYS_ioctl, "ioctl" }, { SYS_sched_yield, "sched_yield" },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].nr == (long)nr)
            return names[i].name;
    }
    return NULL;
}

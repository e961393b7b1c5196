/*
 * child.c - the device processes a bench starts (the nvme sample): fork,
 * output to a log, exec; and collecting them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

pid_t bench_spawn(const char *const argv[], const char *log, int cpu)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cpu_set_t set;

        /* The device may be stopped (SIGSTOP, or a migration state) when
         * we die: take it along rather than leave it behind for ever. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Before exec: the device's threads inherit it. */
        if (cpu >= 0) {
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            sched_setaffinity(0, sizeof(set), &set);
        }
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int bench_reap(pid_t *pid)
{
    int st;

    if (*pid <= 0)
        return 0;
    /* 3 s to leave on its own, 2 more after SIGTERM, then SIGKILL. */
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = 0;
            return st;
        }
        if (i == 300)
            kill(*pid, SIGTERM);
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
    return st;
}

/*
 * unit_util.h - helpers shared by the unit tests (after cmocka.h).
 */
#ifndef MUSER_TEST_UNIT_UTIL_H
#define MUSER_TEST_UNIT_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>

/* Number of fds open in this process (the count's own DIR fd not
 * included). */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;       /* the DIR's own fd */
}

static inline bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

#endif

/*
 * unit_ctx.h - a context fixture shared by the event-loop unit tests
 * (after cmocka.h).
 */
#ifndef MUSER_TEST_UNIT_CTX_H
#define MUSER_TEST_UNIT_CTX_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"
#include "unit_util.h"

/*
 * A context the test itself drives (mu_ctx_poll on the test's thread),
 * its client a socketpair end: unit_ctx_create makes it on a socket in a
 * fresh directory 'dir' (char[64]); the test configures it; unit_ctx_attach
 * realizes it and attaches the pair, returning the client's (non-blocking)
 * end; unit_ctx_destroy undoes all and checks the process has base_fds
 * fds again.
 */
static inline void unit_ctx_create(mu_ctx_t **ctx, char *dir, size_t dirlen)
{
    char path[128];

    snprintf(dir, dirlen, "/tmp/muser-unit-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/t.sock", dir);
    assert_int_equal(mu_ctx_create(ctx, path, MU_DEV_PCI, NULL), 0);
}

static inline int unit_ctx_attach(mu_ctx_t *ctx)
{
    int sv[2];

    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(mu_ctx_attach_fd(ctx, sv[0]), 0);
    return sv[1];
}

static inline void unit_ctx_destroy(mu_ctx_t **ctx, int *peer,
                                    const char *dir, int base_fds)
{
    char path[128];

    mu_ctx_destroy(*ctx);
    *ctx = NULL;
    close(*peer);
    *peer = -1;
    snprintf(path, sizeof(path), "%s/t.sock", dir);
    unlink(path);
    rmdir(dir);
    assert_int_equal(count_fds(), base_fds);
}

#endif

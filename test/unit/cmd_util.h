/*
 * cmd_util.h - run one command handler of the library on a message built
 * in the test (after cmocka.h and the library's private.h).
 */
#ifndef MUSER_TEST_CMD_UTIL_H
#define MUSER_TEST_CMD_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * h(ctx) on a message of cmd with a copy of body[0..len) and, when fd >= 0,
 * a dup of fd (the caller keeps its own).  With reply NULL the reply is
 * thrown away; otherwise the caller owns what it holds (reply->data when
 * data_free).  ctx->why is cleared first, so it holds this command's
 * refusal reason.  Returns the handler's result.
 */
static inline int unit_run_cmd(mu_ctx_t *ctx, mu_handler_t h, uint16_t cmd,
                               const void *body, size_t len, int fd,
                               struct mu_reply *reply)
{
    struct mu_msg msg = { .hdr = { .cmd = cmd, .size = 16 + len } };
    struct mu_reply dummy;
    int rc;

    if (reply == NULL)
        reply = &dummy;
    memset(reply, 0, sizeof(*reply));
    msg.body = len ? malloc(len) : NULL;
    msg.len = len;
    if (len)
        memcpy(msg.body, body, len);
    if (fd >= 0) {
        msg.fds = malloc(sizeof(int));
        msg.fds[0] = dup(fd);
        msg.nfds = 1;
    }
    ctx->why = NULL;
    rc = h(ctx, &msg, reply);
    mu_msg_release(&msg);
    if (reply == &dummy && reply->data_free)
        free(reply->data);
    return rc;
}

#endif

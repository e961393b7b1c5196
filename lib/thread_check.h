/*
 * thread_check.h - debug builds (no NDEBUG) assert that the calls muser.h
 * documents "context thread" come from it.  Before the context is first
 * run or polled there is no context thread yet, and setup code on any one
 * thread may call them.
 */
#ifndef MUSER_THREAD_CHECK_H
#define MUSER_THREAD_CHECK_H

#include <assert.h>

#include "private.h"

#define MU_ASSERT_CTX_THREAD(ctx) \
    assert(!__atomic_load_n(&(ctx)->have_thread, __ATOMIC_ACQUIRE) || \
           mu_on_ctx_thread(ctx))

#endif

/*
 * mig_fsm.c - VFIO migration v2 state machine (see mig_fsm.h).
 *
 * Rather than a 8x8 next-state table per feature set, the direct arcs are
 * listed once and the path is a breadth-first search over them, with the
 * rule that only the first and last state of a path may be a saving state
 * or RESUMING.  With so few states the search costs nothing and the rules
 * stay readable; test_mig_fsm checks it against VFIO's table.
 */
#include <errno.h>
#include <stddef.h>

#include "mig_fsm.h"

bool mig_state_offered(uint32_t flags, uint32_t s)
{
    switch (s) {
    case MIG_ERROR:
    case MIG_STOP:
    case MIG_RUNNING:
    case MIG_STOP_COPY:
    case MIG_RESUMING:
        return true;
    case MIG_RUNNING_P2P:
        return flags & MIG_F_P2P;
    case MIG_PRE_COPY:
        return flags & MIG_F_PRE_COPY;
    case MIG_PRE_COPY_P2P:
        return (flags & MIG_F_P2P) && (flags & MIG_F_PRE_COPY);
    default:
        return false;
    }
}

bool mig_state_running(uint32_t s)
{
    return s == MIG_RUNNING || s == MIG_RUNNING_P2P || s == MIG_PRE_COPY ||
           s == MIG_PRE_COPY_P2P;
}

bool mig_state_saving(uint32_t s)
{
    return s == MIG_STOP_COPY || s == MIG_PRE_COPY || s == MIG_PRE_COPY_P2P;
}

/*
 * The arcs a device implements.  With P2P the device is quiesced in two
 * steps (RUNNING -> RUNNING_P2P -> STOP), so the one-step arcs that skip
 * the P2P state exist only without it.
 */
static bool arc(uint32_t flags, uint32_t from, uint32_t to)
{
    bool p2p = flags & MIG_F_P2P;

    switch (from) {
    case MIG_STOP:
        return to == MIG_STOP_COPY || to == MIG_RESUMING ||
               to == (p2p ? MIG_RUNNING_P2P : MIG_RUNNING);
    case MIG_RUNNING:
        return to == MIG_PRE_COPY || to == (p2p ? MIG_RUNNING_P2P : MIG_STOP);
    case MIG_STOP_COPY:
    case MIG_RESUMING:
        return to == MIG_STOP;
    case MIG_RUNNING_P2P:
        return to == MIG_STOP || to == MIG_RUNNING || to == MIG_PRE_COPY_P2P;
    case MIG_PRE_COPY:
        return to == MIG_RUNNING ||
               to == (p2p ? MIG_PRE_COPY_P2P : MIG_STOP_COPY);
    case MIG_PRE_COPY_P2P:
        return to == MIG_PRE_COPY || to == MIG_RUNNING_P2P ||
               to == MIG_STOP_COPY;
    default:
        return false;
    }
}

bool mig_arc_direct(uint32_t flags, uint32_t from, uint32_t to)
{
    return mig_state_offered(flags, from) && mig_state_offered(flags, to) &&
           from != MIG_ERROR && to != MIG_ERROR && arc(flags, from, to);
}

/*
 * vfio.h: a path has saving states inside it only while it stays in the
 * saving group (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY); it never leaves
 * a saving state for another one by way of a running or stopped state, nor
 * passes through one on the way from or to anything else.
 */
static bool may_pass(uint32_t s, uint32_t cur, uint32_t goal)
{
    if (s == MIG_RESUMING || s == MIG_ERROR)
        return false;
    return !mig_state_saving(s) ||
           (mig_state_saving(cur) && mig_state_saving(goal));
}

int mig_path(uint32_t flags, uint32_t cur, uint32_t goal,
             uint32_t path[MIG_MAX_PATH])
{
    uint32_t prev[MIG_NR_STATES], queue[MIG_NR_STATES];
    bool seen[MIG_NR_STATES] = { false };
    unsigned head = 0, tail = 0, n = 0;
    uint32_t s;

    if (!(flags & MIG_F_STOP_COPY) || !mig_state_offered(flags, cur) ||
        !mig_state_offered(flags, goal) || cur == MIG_ERROR ||
        goal == MIG_ERROR)
        return -EINVAL;
    if (cur == goal)
        return 0;
    /* vfio.h: once the device has stopped for the final copy or taken a
     * stream, going back to pre-copy is not a thing. */
    if ((cur == MIG_STOP_COPY || cur == MIG_RESUMING) &&
        (goal == MIG_PRE_COPY || goal == MIG_PRE_COPY_P2P))
        return -EINVAL;

    seen[cur] = true;
    queue[tail++] = cur;
    while (head < tail && !seen[goal]) {
        uint32_t from = queue[head++];

        if (from != cur && !may_pass(from, cur, goal))
            continue;
        for (uint32_t to = 0; to < MIG_NR_STATES; to++) {
            if (seen[to] || !mig_arc_direct(flags, from, to))
                continue;
            seen[to] = true;
            prev[to] = from;
            queue[tail++] = to;
        }
    }
    if (!seen[goal])
        return -EINVAL;
    for (s = goal; s != cur; s = prev[s])
        n++;
    if (n > MIG_MAX_PATH)
        return -EINVAL;     /* cannot happen with these arcs */
    for (s = goal, head = n; s != cur; s = prev[s])
        path[--head] = s;
    return (int)n;
}

int mig_next_step(uint32_t flags, uint32_t cur, uint32_t goal, uint32_t *next)
{
    uint32_t path[MIG_MAX_PATH];
    int n = mig_path(flags, cur, goal, path);

    if (n < 0)
        return n;
    *next = n == 0 ? goal : path[0];
    return 0;
}

const char *mig_state_name(uint32_t s)
{
    static const char *const names[MIG_NR_STATES] = {
        [MIG_ERROR] = "ERROR",
        [MIG_STOP] = "STOP",
        [MIG_RUNNING] = "RUNNING",
        [MIG_STOP_COPY] = "STOP_COPY",
        [MIG_RESUMING] = "RESUMING",
        [MIG_RUNNING_P2P] = "RUNNING_P2P",
        [MIG_PRE_COPY] = "PRE_COPY",
        [MIG_PRE_COPY_P2P] = "PRE_COPY_P2P",
    };

    return s < MIG_NR_STATES ? names[s] : "invalid";
}

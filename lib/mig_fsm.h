/*
 * mig_fsm.h - the VFIO migration v2 state machine, pure (no I/O, no
 * context): which states a device offers, whether an arc is allowed, and
 * the next step of the shortest path from one state to another.
 *
 * The arcs are those of linux include/uapi/linux/vfio.h (enum
 * vfio_device_mig_state and the text around it): a handful of direct arcs;
 * any other requested change is taken through the shortest chain of direct
 * arcs that does not pass through a saving state (PRE_COPY*, STOP_COPY) or
 * RESUMING unless that state is the goal.  Some goals cannot be reached that
 * way (STOP_COPY -> PRE_COPY, RESUMING -> PRE_COPY, anything from or to
 * ERROR): those are refused.
 */
#ifndef MUSER_MIG_FSM_H
#define MUSER_MIG_FSM_H

#include <stdbool.h>
#include <stdint.h>

/* State numbers as on the wire (MIG_DEVICE_STATE) and in VFIO. */
enum mig_state {
    MIG_ERROR = 0,
    MIG_STOP = 1,
    MIG_RUNNING = 2,
    MIG_STOP_COPY = 3,
    MIG_RESUMING = 4,
    MIG_RUNNING_P2P = 5,
    MIG_PRE_COPY = 6,
    MIG_PRE_COPY_P2P = 7,
    MIG_NR_STATES = 8,
};

/* What the device offers (DEVICE_FEATURE MIGRATION flags, as on the wire). */
#define MIG_F_STOP_COPY 0x1u
#define MIG_F_P2P 0x2u
#define MIG_F_PRE_COPY 0x4u

/* A state exists for a device offering 'flags' (ERROR always does). */
bool mig_state_offered(uint32_t flags, uint32_t state);

/* One direct arc, both states offered. */
bool mig_arc_direct(uint32_t flags, uint32_t from, uint32_t to);

/*
 * The next state on the way from cur to goal: *next == goal when one arc
 * does it (or cur == goal, *next = goal, a no-op).  Returns 0, or -EINVAL
 * when either state is unknown or not offered, the goal is ERROR, cur is
 * ERROR, or the goal cannot be reached.  Nothing is written on failure.
 */
int mig_next_step(uint32_t flags, uint32_t cur, uint32_t goal, uint32_t *next);

/*
 * The whole path: path[0..n) are the states entered after cur, the last
 * being goal (n == 0 when cur == goal).  Returns n (at most MIG_MAX_PATH)
 * or -EINVAL as mig_next_step.
 */
#define MIG_MAX_PATH 4
int mig_path(uint32_t flags, uint32_t cur, uint32_t goal,
             uint32_t path[MIG_MAX_PATH]);

/* The device runs (may DMA and raise interrupts) in this state. */
bool mig_state_running(uint32_t state);
/* A saving state: MIG_DATA_READ is valid. */
bool mig_state_saving(uint32_t state);

const char *mig_state_name(uint32_t state);

#endif /* MUSER_MIG_FSM_H */

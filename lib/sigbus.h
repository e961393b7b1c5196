/*
 * sigbus.h - survive guest memory that shrinks under a DMA mapping.
 *
 * A client can truncate (or leave holes in) the file behind a region the
 * device has mmapped; the next access to a page past the end raises
 * SIGBUS.  The library keeps a process-wide, lock-free table of the ranges
 * it has mapped.  Its SIGBUS handler (or the device's, through
 * mu_sigbus_handle()) finds the range holding si_addr, maps anonymous zero
 * memory over the whole range so the faulting access completes, records
 * the fault address and wakes the owning context through its eventfd; the
 * context then drops the client (dma.c, mu_dma_on_poison).
 */
#ifndef MU_SIGBUS_H
#define MU_SIGBUS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Publish [addr, addr + len), mapped with 'prot', as guest memory: a fault
 * there is answered with zeros and a write to wake_fd (an eventfd).
 * Installs the library's handler first unless the device owns SIGBUS
 * (mu_sigbus_own).  Returns a slot (>= 0) for the calls below, or -ENOMEM
 * (table full) or the sigaction errno.  Any thread; takes a mutex, so never
 * from a signal handler.
 */
int mu_sigbus_register(void *addr, size_t len, int prot, int wake_fd);

/*
 * Withdraw a slot, before the range is munmapped.  Returns the first
 * faulting address recorded in it (0: no fault).
 */
uintptr_t mu_sigbus_unregister(int slot);

/* The first faulting address recorded in a slot, 0 if none.  Lock-free. */
uintptr_t mu_sigbus_fault_addr(int slot);

/* Faults answered since the process started (tests). */
uint64_t mu_sigbus_faults(void);

#endif

/*
 * pci.h - PCI config space (pci.c), internal: the state the context embeds
 * and what the rest of the library asks of it.  pci.c owns every byte.
 */
#ifndef MUSER_PCI_H
#define MUSER_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "muser.h"

/* ---- PCI config space ---- */

struct mu_cfg_hook {
    uint32_t offset, len;
    mu_access_cb_t cb;
};

struct mu_pci {
    enum mu_dev_type type;
    size_t size;            /* 256 or 4096 */
    uint8_t *cfg;           /* what the guest reads */
    uint8_t *wmask;         /* bits the guest may write */
    uint8_t *w1cmask;       /* bits the guest clears by writing 1 */
    uint8_t cap_last;       /* offset of the last capability, 0 if none */
    uint8_t cap_end;        /* first free byte for the next capability */
    uint8_t pm_off, msi_off, msix_off, pcie_off;
    struct mu_pci_ids ids;
    struct mu_cfg_hook hooks[16];
    unsigned nr_hooks;
    mu_pci_command_cb_t command_cb;
};

int mu_pci_init(mu_ctx_t *ctx, enum mu_dev_type type);
void mu_pci_fini(mu_ctx_t *ctx);
/* Build BAR registers and masks from the declared regions. */
int mu_pci_realize(mu_ctx_t *ctx);
/* Guest access to config space (region 7). */
ssize_t mu_pci_config_access(mu_ctx_t *ctx, uint8_t *buf, size_t count,
                             uint64_t offset, bool is_write);
/* Put the config space back to its state after realize (reset). */
void mu_pci_reset(mu_ctx_t *ctx);
/*
 * What irq.c asks of config space (pci.c owns every byte of it).  The
 * guest's INTx disable bit (any thread); whether an MSI / MSI-X capability
 * was added; where the MSI-X capability puts its table and PBA (false when
 * there is none); and clearing the MSI enable and MSI-X enable and
 * function mask bits (client gone).
 */
struct mu_pci_msix_layout {
    unsigned table_bar, pba_bar;
    uint64_t table_off, pba_off;
};
bool mu_pci_intx_disabled(const mu_ctx_t *ctx);
bool mu_pci_has_msi(const mu_ctx_t *ctx);
bool mu_pci_has_msix(const mu_ctx_t *ctx);
bool mu_pci_msix_layout(const mu_ctx_t *ctx, struct mu_pci_msix_layout *l);
void mu_pci_irq_caps_off(mu_ctx_t *ctx);

#endif /* MUSER_PCI_H */

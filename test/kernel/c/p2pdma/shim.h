/*
 * physr userspace shim for calc_map_type_and_dist (drivers/pci/p2pdma.c, extracted by name with the
 * host-bridge allowlist table): pci_dev / pci_bus trees built by the driver, ACS control read from
 * the device, the boot CPU's vendor and family, and no logging or caching (no p2pdma provider state).
 */
#ifndef PHYSR_P2PDMA_SHIM_H
#define PHYSR_P2PDMA_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef unsigned short u16;
typedef unsigned int gfp_t;

#define CONFIG_X86 1
#define X86_VENDOR_INTEL 0
#define X86_VENDOR_AMD 2
#define X86_VENDOR_UNKNOWN 0xff
struct cpuinfo_x86 {
	unsigned char x86_vendor;
	unsigned char x86;
};
extern struct cpuinfo_x86 physr_boot_cpu;
#define cpu_data(cpu) (physr_boot_cpu)

#define PCI_VENDOR_ID_INTEL 0x8086
#define PCI_DEVFN(slot, func) ((((slot) & 0x1f) << 3) | ((func) & 0x07))
#define PCI_EXP_TYPE_ROOT_PORT 0x4
/* include/uapi/linux/pci_regs.h */
#define PCI_ACS_CTRL 0x06
#define PCI_ACS_RR 0x0004
#define PCI_ACS_CR 0x0008
#define PCI_ACS_EC 0x0020

enum pci_p2pdma_map_type {
	PCI_P2PDMA_MAP_UNKNOWN = 0,
	PCI_P2PDMA_MAP_NOT_SUPPORTED,
	PCI_P2PDMA_MAP_BUS_ADDR,
	PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
};

struct list_head {
	struct list_head *next, *prev;
};

struct pci_bus;
struct pci_host_bridge {
	struct pci_bus *bus;
};

struct pci_dev {
	struct list_head bus_list; /* first: list_first_entry needs no container_of arithmetic */
	struct pci_bus *bus;
	unsigned int devfn;
	unsigned short vendor;
	unsigned short device;
	int pcie_type;
	u16 acs_cap;
	u16 acs_ctrl; /* what the ACS control register reads */
	void *p2pdma;
	char name[16];
};

struct pci_bus {
	struct pci_bus *parent;
	struct pci_dev *self;
	struct list_head devices;
	struct pci_host_bridge *bridge;
	int number;
};

#define list_first_entry_or_null(head, type, member) \
	((head)->next != (head) ? (type *)((char *)(head)->next - offsetof(type, member)) : NULL)

static inline bool pci_is_root_bus(struct pci_bus *bus) { return !bus->parent; }
static inline struct pci_dev *pci_upstream_bridge(struct pci_dev *dev)
{
	return pci_is_root_bus(dev->bus) ? NULL : dev->bus->self;
}
static inline struct pci_host_bridge *pci_find_host_bridge(struct pci_bus *bus)
{
	while (bus->parent)
		bus = bus->parent;
	return bus->bridge;
}
static inline int pci_pcie_type(struct pci_dev *dev) { return dev->pcie_type; }
static inline int pci_read_config_word(struct pci_dev *dev, int where, u16 *val)
{
	*val = where == dev->acs_cap + PCI_ACS_CTRL ? dev->acs_ctrl : 0;
	return 0;
}
static inline const char *pci_name(struct pci_dev *dev) { return dev->name; }
static inline int pci_domain_nr(struct pci_bus *bus) { return 0; }
static inline unsigned int pci_dev_id(struct pci_dev *dev) { return dev->devfn; }
#define pci_warn(dev, ...) do { } while (0)

struct seq_buf {
	char *buffer;
	size_t size;
	size_t len;
};
#define seq_buf_init(s, buf, sz) ((s)->buffer = (buf), (s)->size = (sz), (s)->len = 0)
#define seq_buf_printf(s, ...) ((s)->len = 1) /* the list is only logged; only its count matters */

#define rcu_read_lock() do { } while (0)
#define rcu_read_unlock() do { } while (0)
#define rcu_dereference(p) (p)
#define xa_store(...) do { } while (0)
#define xa_mk_value(v) (v)
#define GFP_ATOMIC 0

#endif

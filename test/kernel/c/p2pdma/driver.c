/*
 * physr differential driver for calc_map_type_and_dist (drivers/pci/p2pdma.c). One line is one
 * machine and the pairs asked about:
 *
 *   <cpu_vendor> <cpu_family> <nbridges> <ndevs>
 *   { <parent|-1> <bridge> <devfn> <root_port> <vendor> <device> <acs_present> <acs_ctrl> } x ndevs
 *   <npairs> { <provider> <client> } x npairs
 *
 * Devices come in scan order (bus, then devfn), so each bus's device list is in the kernel's order.
 * Answers one "<map type> <distance>" per pair, separated by commas.
 */
#include "shim.h"
#include "p2pdma-extracted.c"

struct cpuinfo_x86 physr_boot_cpu;

#define MAX_DEVS 512
#define MAX_BRIDGES 8

static struct pci_dev devs[MAX_DEVS];
static struct pci_bus secondary[MAX_DEVS]; /* the bus below each device that is a bridge */
static struct pci_bus roots[MAX_BRIDGES];
static struct pci_host_bridge hosts[MAX_BRIDGES];

static void list_add_tail(struct list_head *entry, struct list_head *head)
{
	entry->prev = head->prev;
	entry->next = head;
	head->prev->next = entry;
	head->prev = entry;
}

static const char *type_name(enum pci_p2pdma_map_type t)
{
	switch (t) {
	case PCI_P2PDMA_MAP_NOT_SUPPORTED:
		return "not-supported";
	case PCI_P2PDMA_MAP_BUS_ADDR:
		return "bus-address";
	case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
		return "through-host-bridge";
	default:
		return "unknown";
	}
}

int main(void)
{
	unsigned int vendor, family, nbridges, ndevs, npairs, i;

	while (scanf("%u %u %u %u", &vendor, &family, &nbridges, &ndevs) == 4) {
		if (nbridges > MAX_BRIDGES || ndevs > MAX_DEVS)
			return 2;
		physr_boot_cpu.x86_vendor = vendor;
		physr_boot_cpu.x86 = family;
		for (i = 0; i < nbridges; i++) {
			roots[i] = (struct pci_bus){ .bridge = &hosts[i], .number = 0 };
			roots[i].devices.next = roots[i].devices.prev = &roots[i].devices;
			hosts[i].bus = &roots[i];
		}
		for (i = 0; i < ndevs; i++) {
			int parent;
			unsigned int bridge, devfn, root_port, ven, dev, acs, ctrl;
			struct pci_dev *d = &devs[i];
			struct pci_bus *bus;

			if (scanf("%d %u %u %u %u %u %u %u", &parent, &bridge, &devfn, &root_port, &ven, &dev,
				  &acs, &ctrl) != 8 || bridge >= nbridges || parent >= (int)i)
				return 2;
			bus = parent < 0 ? &roots[bridge] : &secondary[parent];
			if (parent >= 0 && !secondary[parent].self) {
				secondary[parent] = (struct pci_bus){ .parent = devs[parent].bus,
								     .self = &devs[parent] };
				secondary[parent].devices.next = secondary[parent].devices.prev =
					&secondary[parent].devices;
			}
			*d = (struct pci_dev){ .bus = bus, .devfn = devfn, .vendor = ven, .device = dev,
					       .pcie_type = root_port ? PCI_EXP_TYPE_ROOT_PORT : 0,
					       .acs_cap = acs ? 0x100 : 0, .acs_ctrl = ctrl };
			snprintf(d->name, sizeof(d->name), "dev%u", i);
			list_add_tail(&d->bus_list, &bus->devices);
		}
		if (scanf("%u", &npairs) != 1)
			return 2;
		for (i = 0; i < npairs; i++) {
			unsigned int p, c;
			int dist = -1;
			enum pci_p2pdma_map_type t;

			if (scanf("%u %u", &p, &c) != 2 || p >= ndevs || c >= ndevs)
				return 2;
			t = calc_map_type_and_dist(&devs[p], &devs[c], &dist, false);
			printf("%s%s %d", i ? "," : "", type_name(t), dist);
		}
		printf("\n");
		for (i = 0; i < ndevs; i++)
			secondary[i].self = NULL;
	}
	return 0;
}

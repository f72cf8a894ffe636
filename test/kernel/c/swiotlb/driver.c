/*
 * physr differential driver for the swiotlb slot search (kernel/dma/swiotlb.c: swiotlb_tbl_map_single,
 * swiotlb_find_slots, swiotlb_search_pool_area, swiotlb_release_slots). One line is one pool's life:
 *
 *   <start> <nslabs> <min_align_mask> <seg_boundary> <nops> { m <orig> <size> <align_mask> | u <k> }...
 *
 * m maps (answers the bounce address, or E when no slots are found); u <k> releases the k-th op's
 * mapping (answers u, or - when it failed).
 */
#include "shim.h"

_Static_assert(sizeof(phys_addr_t) == 8, "phys_addr_t must be 64-bit");
#include <linux/iommu-helper.h>
#include "swiotlb-extracted.c"

#define MAX_OPS 4096

int main(void)
{
	unsigned long long start;
	unsigned long nslabs, boundary;
	unsigned int min_align, nops, i;
	static phys_addr_t done[MAX_OPS];

	while (scanf("%llu %lu %u %lu %u", &start, &nslabs, &min_align, &boundary, &nops) == 5) {
		struct io_tlb_area area = { 0 };
		struct io_tlb_mem mem = { 0 };
		struct device dev = { &mem, min_align, boundary };
		struct io_tlb_pool *pool = &mem.defpool;

		if (nops > MAX_OPS)
			return 2;
		pool->start = start;
		pool->end = start + (nslabs << IO_TLB_SHIFT);
		pool->nslabs = nslabs;
		pool->nareas = 1;
		pool->area_nslabs = nslabs;
		pool->areas = &area;
		pool->slots = calloc(nslabs, sizeof(*pool->slots));
		mem.nslabs = nslabs;
		/* swiotlb_init_io_tlb_pool: each slot counts the free slots to its segment's end. */
		for (i = 0; i < nslabs; i++) {
			pool->slots[i].list = IO_TLB_SEGSIZE - io_tlb_offset(i);
			pool->slots[i].orig_addr = INVALID_PHYS_ADDR;
		}
		for (i = 0; i < nops; i++) {
			char op[2];
			unsigned long long orig;
			unsigned long size, k;
			unsigned int align;

			done[i] = DMA_MAPPING_ERROR;
			if (scanf("%1s", op) != 1)
				return 2;
			if (op[0] == 'm') {
				phys_addr_t tlb;

				if (scanf("%llu %lu %u", &orig, &size, &align) != 3)
					return 2;
				tlb = swiotlb_tbl_map_single(&dev, orig, size, align, DMA_TO_DEVICE,
							     DMA_ATTR_NO_WARN);
				done[i] = tlb;
				if (tlb == DMA_MAPPING_ERROR)
					printf("%sE", i ? " " : "");
				else
					printf("%s%llu", i ? " " : "", (unsigned long long)tlb);
			} else {
				if (scanf("%lu", &k) != 1 || k >= i)
					return 2;
				if (done[k] == DMA_MAPPING_ERROR) {
					printf("%s-", i ? " " : "");
					continue;
				}
				swiotlb_release_slots(&dev, done[k], pool);
				done[k] = DMA_MAPPING_ERROR;
				printf("%su", i ? " " : "");
			}
		}
		printf("\n");
		free(pool->slots);
	}
	return 0;
}

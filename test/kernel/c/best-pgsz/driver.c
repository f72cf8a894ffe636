/*
 * physr differential driver for ib_umem_find_best_pgsz (drivers/infiniband/core/umem.c).
 *
 *   in:  <pgsz_bitmap> <virt> <address> <length> <nsegs> { <dma_address> <dma_length> } x nsegs
 *   out: <page size, or 0>
 */
#include "shim.h"
#include "scatterlist-extracted.c"
#include "umem-extracted.c"

PHYSR_ALLOC_REGISTRY_STORAGE;

#define MAX_SEGS 4096
static struct scatterlist sgl[MAX_SEGS];

int main(void)
{
	unsigned long bitmap, address, length;
	unsigned long virt;
	unsigned int n, i;

	while (scanf("%lu %lu %lu %lu %u", &bitmap, &virt, &address, &length, &n) == 5) {
		struct ib_umem umem = { .length = length, .address = address };

		if (n == 0 || n > MAX_SEGS)
			return 2;
		sg_init_table(sgl, n);
		for (i = 0; i < n; i++) {
			unsigned long dma;
			unsigned int len;

			if (scanf("%lu %u", &dma, &len) != 2)
				return 2;
			sg_dma_address(&sgl[i]) = dma;
			sg_dma_len(&sgl[i]) = len;
		}
		umem.sgt_append.sgt.sgl = sgl;
		umem.sgt_append.sgt.nents = n;
		umem.sgt_append.sgt.orig_nents = n;
		printf("%lu\n", ib_umem_find_best_pgsz(&umem, bitmap, virt));
	}
	return 0;
}

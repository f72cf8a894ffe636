/*
 * physr differential driver for iommu_pgsize and the __iommu_map loop (drivers/iommu/iommu.c).
 *
 *   in:  pg <pgsize_bitmap> <iova> <paddr> <size>     out: <pgsize> <count>
 *        map <pgsize_bitmap> <iova> <paddr> <size>    out: rc=<rc> <pgsize>x<count>...
 *
 * map's map_pages records each (pgsize, count) step and maps all of it.
 */
#include "shim.h"
#include "iommu-extracted.c"

static void record_step(size_t pgsize, size_t count)
{
	printf(" %zux%zu", pgsize, count);
}

static int recording_map_pages(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
			       size_t pgsize, size_t pgcount, int prot, gfp_t gfp, size_t *mapped)
{
	record_step(pgsize, pgcount);
	*mapped = pgsize * pgcount;
	return 0;
}

static const struct iommu_domain_ops ops = { .map_pages = recording_map_pages };

int main(void)
{
	char op[8];
	unsigned long bitmap, iova, size;
	unsigned long long paddr;

	while (scanf("%7s %lu %lu %llu %lu", op, &bitmap, &iova, &paddr, &size) == 5) {
		struct iommu_domain domain = {
			.type = __IOMMU_DOMAIN_PAGING, .ops = &ops, .pgsize_bitmap = bitmap,
		};

		if (op[0] == 'p') {
			size_t count;
			size_t pgsize = iommu_pgsize(&domain, iova, paddr, size, &count);

			printf("%zu %zu\n", pgsize, count);
		} else {
			/* Steps print as they happen; the return code follows them. */
			printf("steps");
			int rc = __iommu_map(&domain, iova, paddr, size, 3, 0);

			printf(" rc=%d\n", rc);
		}
	}
	return 0;
}

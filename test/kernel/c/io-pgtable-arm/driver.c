/*
 * physr differential driver for drivers/iommu/io-pgtable-arm.c (ARM LPAE stage 1, 48-bit IAS and
 * OAS, coherent walk), mapped and unmapped through __iommu_map / __iommu_unmap as iommu_map and
 * iommu_unmap do. One line is one table's life:
 *
 *   <granule> <pgsize_bitmap> <nops> { m <iova> <paddr> <size> <prot> | u <iova> <size> | p <iova> | t 0 }...
 *
 * m answers its return code, u the bytes unmapped (with "!split" after it when the unmap allocated a
 * table to split a block), p the iova_to_phys result then the level and PTE word where the walk
 * ends, as phys/level:pte (phys/level- when it ends at an empty entry), t the table pages live.
 */
#include "iommu-shim.h"
#include "io-pgtable-arm-source.c"
#include "iommu-extracted.c"

static void noop_flush_all(void *cookie) { }
static void noop_flush_walk(unsigned long iova, size_t size, size_t granule, void *cookie) { }
static void noop_add_page(struct iommu_iotlb_gather *g, unsigned long iova, size_t granule,
			  void *cookie) { }
static const struct iommu_flush_ops flush_ops = {
	.tlb_flush_all = noop_flush_all,
	.tlb_flush_walk = noop_flush_walk,
	.tlb_add_page = noop_add_page,
};

static int dom_map_pages(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
			 size_t pgsize, size_t pgcount, int prot, gfp_t gfp, size_t *mapped)
{
	struct io_pgtable_ops *ops = domain->pgtbl_ops;

	return ops->map_pages(ops, iova, paddr, pgsize, pgcount, prot, gfp, mapped);
}

static size_t dom_unmap_pages(struct iommu_domain *domain, unsigned long iova, size_t pgsize,
			      size_t pgcount, struct iommu_iotlb_gather *gather)
{
	struct io_pgtable_ops *ops = domain->pgtbl_ops;

	return ops->unmap_pages(ops, iova, pgsize, pgcount, gather);
}

static const struct iommu_domain_ops dom_ops = {
	.map_pages = dom_map_pages,
	.unmap_pages = dom_unmap_pages,
};

size_t iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size)
{
	struct iommu_iotlb_gather gather = { 0 };

	return __iommu_unmap(domain, iova, size, &gather);
}

/* The PTE where a walk for iova ends: a leaf, or the first empty entry. */
static void print_walk(struct arm_lpae_io_pgtable *data, unsigned long iova)
{
	arm_lpae_iopte *ptep = data->pgd;
	int lvl = data->start_level;

	for (;;) {
		arm_lpae_iopte pte = ptep[ARM_LPAE_LVL_IDX(iova, lvl, data)];

		if (!pte) {
			printf("/%d-", lvl);
			return;
		}
		if (iopte_leaf(pte, lvl, data->iop.fmt) || lvl == ARM_LPAE_MAX_LEVELS - 1) {
			printf("/%d:%llu", lvl, (unsigned long long)pte);
			return;
		}
		ptep = __va(iopte_to_paddr(pte, data));
		lvl++;
	}
}

int main(void)
{
	unsigned long granule, bitmap;
	unsigned int nops, i;

	while (scanf("%lu %lu %u", &granule, &bitmap, &nops) == 3) {
		struct io_pgtable_cfg cfg = {
			.pgsize_bitmap = bitmap, .ias = 48, .oas = 48, .coherent_walk = true,
			.tlb = &flush_ops,
		};
		struct io_pgtable *iop;
		struct arm_lpae_io_pgtable *data;
		struct iommu_domain dom;

		physr_live_tables = 0;
		iop = io_pgtable_arm_64_lpae_s1_init_fns.alloc(&cfg, NULL);
		if (!iop)
			return 2;
		iop->fmt = ARM_64_LPAE_S1;
		iop->cfg = cfg;
		iop->cookie = NULL;
		data = io_pgtable_to_data(iop);
		dom = (struct iommu_domain){ __IOMMU_DOMAIN_PAGING, &dom_ops, iop->cfg.pgsize_bitmap,
					     &iop->ops };
		if (iop->cfg.pgsize_bitmap & ~bitmap)
			return 3; /* the table would not take the page sizes asked for */
		for (i = 0; i < nops; i++) {
			char op[2];
			unsigned long iova, size;
			unsigned long long paddr;
			int prot;

			if (scanf("%1s %lu", op, &iova) != 2)
				return 2;
			if (i)
				printf(" ");
			if (op[0] == 'm') {
				if (scanf("%llu %lu %d", &paddr, &size, &prot) != 3)
					return 2;
				printf("%d", __iommu_map(&dom, iova, paddr, size, prot, 0));
			} else if (op[0] == 'u') {
				struct iommu_iotlb_gather gather = { 0 };
				long splits = physr_split_allocs;

				if (scanf("%lu", &size) != 1)
					return 2;
				printf("%zu", __iommu_unmap(&dom, iova, size, &gather));
				if (physr_split_allocs != splits)
					printf("!split");
			} else if (op[0] == 't') {
				printf("t%ld", physr_live_tables);
			} else {
				printf("%llu", (unsigned long long)iop->ops.iova_to_phys(&iop->ops, iova));
				print_walk(data, iova);
			}
		}
		printf("\n");
		io_pgtable_arm_64_lpae_s1_init_fns.free(iop);
	}
	return 0;
}

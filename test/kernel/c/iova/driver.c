/*
 * physr differential driver for drivers/iommu/iova.c (the whole file, with iova-shim.h). One line is
 * one domain's life: init_iova_domain(4K granule, start pfn 1) with rcaches, then operations:
 *
 *   r <lo> <hi>            reserve_iova                    -> r
 *   a <size> <limit> <al>  alloc_iova (al: size_aligned)   -> pfn_lo, or 0 when it fails
 *   A <size> <limit> <fl>  alloc_iova_fast (fl: flush)     -> pfn, or 0
 *   f <k>                  free the k-th operation's allocation with the matching call
 *                          (free_iova_fast(pfn, size) for A, free_iova(pfn) for a) -> f, or - if gone
 *   c                      free_cpu_cached_iovas + free_global_cached_iovas -> c
 *
 * then "|" and every range in the rbtree, ascending, as lo-hi.
 */
#include "iova-shim.h"
#include "iova-source.c"

PHYSR_ALLOC_REGISTRY_STORAGE;

#define MAX_OPS 4096

struct done {
	char op;
	unsigned long pfn, size;
	bool live;
};
static struct done ops[MAX_OPS];

int main(void)
{
	unsigned int nops, i;

	if (iova_cache_get())
		return 2;
	while (scanf("%u", &nops) == 1) {
		struct iova_domain dom;
		struct rb_node *node;

		if (nops > MAX_OPS)
			return 2;
		init_iova_domain(&dom, PAGE_SIZE, 1);
		if (iova_domain_init_rcaches(&dom))
			return 2;
		for (i = 0; i < nops; i++) {
			char op[2];
			unsigned long x, y, z;
			struct done *d = &ops[i];

			d->op = 0;
			d->live = false;
			if (scanf("%1s", op) != 1)
				return 2;
			switch (op[0]) {
			case 'r':
				if (scanf("%lu %lu", &x, &y) != 2)
					return 2;
				reserve_iova(&dom, x, y);
				printf("r ");
				break;
			case 'a': {
				struct iova *iova;

				if (scanf("%lu %lu %lu", &x, &y, &z) != 3)
					return 2;
				iova = alloc_iova(&dom, x, y, z);
				*d = (struct done){ 'a', iova ? iova->pfn_lo : 0, x, iova != NULL };
				printf("%lu ", d->pfn);
				break;
			}
			case 'A':
				if (scanf("%lu %lu %lu", &x, &y, &z) != 3)
					return 2;
				d->pfn = alloc_iova_fast(&dom, x, y, z);
				*d = (struct done){ 'A', d->pfn, x, d->pfn != 0 };
				printf("%lu ", d->pfn);
				break;
			case 'f':
				if (scanf("%lu", &x) != 1 || x >= i)
					return 2;
				if (!ops[x].live) {
					printf("- ");
					break;
				}
				if (ops[x].op == 'A')
					free_iova_fast(&dom, ops[x].pfn, ops[x].size);
				else
					free_iova(&dom, ops[x].pfn);
				ops[x].live = false;
				printf("f ");
				break;
			case 'c':
				free_cpu_cached_iovas(0, &dom);
				free_global_cached_iovas(&dom);
				printf("c ");
				break;
			default:
				return 2;
			}
		}
		printf("|");
		for (node = rb_first(&dom.rbroot); node; node = rb_next(node)) {
			struct iova *iova = to_iova(node);

			if (iova->pfn_lo != IOVA_ANCHOR)
				printf(" %lu-%lu", iova->pfn_lo, iova->pfn_hi);
		}
		printf("\n");
		put_iova_domain(&dom);
		physr_reset_allocs();
	}
	return 0;
}

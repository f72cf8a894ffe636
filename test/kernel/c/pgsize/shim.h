/*
 * physr userspace shim for iommu_pgsize and __iommu_map (drivers/iommu/iommu.c, extracted by name):
 * just the domain fields and helpers those two functions touch.
 */
#ifndef PHYSR_PGSIZE_SHIM_H
#define PHYSR_PGSIZE_SHIM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef unsigned long long phys_addr_t;
typedef unsigned int gfp_t;

#define likely(x) (x)
#define unlikely(x) (x)
#define BUG_ON(c) do { if (c) { printf("BUG\n"); exit(3); } } while (0)
#define WARN_ON(c) ({ int __w = !!(c); __w; })
#define BIT(n) (1UL << (n))
#define GENMASK(h, l) ((~0UL >> (63 - (h))) & (~0UL << (l)))
#define IS_ALIGNED(x, a) (((x) & ((typeof(x))(a) - 1)) == 0)
#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)
#define pr_err(...) do { } while (0)
#define pr_debug(...) do { } while (0)
#define trace_map(a, b, c) do { } while (0)

static inline unsigned long __fls(unsigned long x) { return 63 - __builtin_clzl(x); }
static inline unsigned long __ffs(unsigned long x) { return __builtin_ctzl(x); }

#define __IOMMU_DOMAIN_PAGING (1U << 0)

struct iommu_domain;

struct iommu_domain_ops {
	int (*map_pages)(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
			 size_t pgsize, size_t pgcount, int prot, gfp_t gfp, size_t *mapped);
};

struct iommu_domain {
	unsigned int type;
	const struct iommu_domain_ops *ops;
	unsigned long pgsize_bitmap;
};

/* Only reached when map_pages fails, which the recording map_pages never does. */
static inline size_t iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size)
{
	abort();
}

#endif

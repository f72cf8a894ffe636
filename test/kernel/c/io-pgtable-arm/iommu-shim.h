/*
 * physr userspace shim for drivers/iommu/io-pgtable-arm.c (compiled whole, with its include of
 * iommu-pages.h replaced by this file) and __iommu_map / __iommu_unmap / iommu_pgsize (extracted by
 * name from drivers/iommu/iommu.c): IOMMU prot bits, an iotlb gather that is never queued, table
 * pages from aligned_alloc (a pointer is its own physical address), coherent walks (no DMA sync).
 */
#ifndef PHYSR_IOPGTABLE_SHIM_H
#define PHYSR_IOPGTABLE_SHIM_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/bitops.h>
#include <linux/bits.h>
#include <linux/log2.h>
#include <linux/sizes.h>

typedef u64 dma_addr_t;
struct device { int unused; };

/* include/linux/iommu.h */
#define IOMMU_READ (1 << 0)
#define IOMMU_WRITE (1 << 1)
#define IOMMU_CACHE (1 << 2)
#define IOMMU_NOEXEC (1 << 3)
#define IOMMU_MMIO (1 << 4)
#define IOMMU_PRIV (1 << 5)
#define IOMMU_DIRTY_NO_CLEAR (1 << 0)
#define __IOMMU_DOMAIN_PAGING (1U << 0)

struct iommu_iotlb_gather {
	unsigned long start;
	unsigned long end;
	size_t pgsize;
	bool queued;
};
static inline bool iommu_iotlb_gather_queued(struct iommu_iotlb_gather *gather)
{
	return gather && gather->queued;
}
struct iommu_dirty_bitmap { int unused; };
static inline void iommu_dirty_bitmap_record(struct iommu_dirty_bitmap *d, unsigned long iova,
					     unsigned long length) { }

struct iommu_domain;
struct iommu_domain_ops {
	int (*map_pages)(struct iommu_domain *domain, unsigned long iova, phys_addr_t paddr,
			 size_t pgsize, size_t pgcount, int prot, gfp_t gfp, size_t *mapped);
	size_t (*unmap_pages)(struct iommu_domain *domain, unsigned long iova, size_t pgsize,
			      size_t pgcount, struct iommu_iotlb_gather *gather);
};
struct iommu_domain {
	unsigned int type;
	const struct iommu_domain_ops *ops;
	unsigned long pgsize_bitmap;
	void *pgtbl_ops;
};
size_t iommu_unmap(struct iommu_domain *domain, unsigned long iova, size_t size);

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define GFP_KERNEL 0
/* A bit of its own: io-pgtable-arm allocates with it only to split a block on unmap (6.12). */
#define GFP_ATOMIC 0x20u
#define __GFP_HIGHMEM 0x2
#define __GFP_ZERO 0
#define NUMA_NO_NODE (-1)
#define likely(x) (x)
#define unlikely(x) (x)
#define pr_err(...) do { } while (0)
#define pr_info(...) do { } while (0)
#define pr_debug(...) do { } while (0)
#define dev_err(dev, ...) do { } while (0)
#define trace_map(a, b, c) do { } while (0)
#define trace_unmap(a, b, c) do { } while (0)
#define VM_BUG_ON(c) do { if (c) abort(); } while (0)
#define BUG() abort()
#define BUG_ON(c) do { if (c) abort(); } while (0)
#ifndef WARN_ON
#define WARN_ON(c) ({ int __w = !!(c); __w; })
#endif
#ifndef IS_ALIGNED
#define IS_ALIGNED(x, a) (((x) & ((typeof(x))(a) - 1)) == 0)
#endif
/* Only the dirty-tracking code uses it; not reached. */
static inline int test_and_set_bit(long nr, volatile unsigned long *addr) { abort(); }
#define __init
#define wmb() __sync_synchronize()
#define dma_wmb() __sync_synchronize()
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#define cmpxchg64_relaxed(p, o, n) __sync_val_compare_and_swap(p, o, n)
#define cmpxchg64_release(p, o, n) __sync_val_compare_and_swap(p, o, n)
#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)
#define virt_to_phys(p) ((u64)(unsigned long)(p))
#define __pa(p) ((u64)(unsigned long)(p))
#define __va(x) ((void *)(unsigned long)(x))
#define dev_to_node(dev) 0
#define kfree(p) free(p)
static inline void *kmalloc(size_t size, unsigned int gfp) { return calloc(1, size); }
static inline void *kzalloc(size_t size, unsigned int gfp) { return calloc(1, size); }
static inline int get_order(unsigned long size)
{
	int order = 0;

	while ((PAGE_SIZE << order) < size)
		order++;
	return order;
}

/* Table pages live now, and allocations made to split a block (the driver prints both). */
static long physr_live_tables;
static long physr_split_allocs;

/* Tables are naturally aligned, as pages from the buddy allocator are. */
static inline void *iommu_alloc_pages_node(int nid, unsigned int gfp, int order)
{
	size_t size = PAGE_SIZE << order;
	void *p = aligned_alloc(size, size);

	if (p) {
		memset(p, 0, size);
		physr_live_tables++;
		if (gfp & GFP_ATOMIC)
			physr_split_allocs++;
	}
	return p;
}
static inline void iommu_free_pages(void *p, int order)
{
	if (p)
		physr_live_tables--;
	free(p);
}

/* coherent_walk is set: these are never reached. */
enum dma_data_direction { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE };
static inline dma_addr_t dma_map_single(struct device *d, void *p, size_t s, int dir) { abort(); }
static inline void dma_unmap_single(struct device *d, dma_addr_t a, size_t s, int dir) { abort(); }
static inline int dma_mapping_error(struct device *d, dma_addr_t a) { abort(); }
static inline void dma_sync_single_for_device(struct device *d, dma_addr_t a, size_t s, int dir) { abort(); }

#endif

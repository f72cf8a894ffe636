/*
 * physr userspace shim for the swiotlb slot search, map and release (kernel/dma/swiotlb.c, extracted
 * by name): one pool of one area (a one-CPU machine), the device's min_align_mask and segment
 * boundary, and no byte copying (the bounce itself is not compared here).
 */
#ifndef PHYSR_SWIOTLB_SHIM_H
#define PHYSR_SWIOTLB_SHIM_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/log2.h>

typedef u64 dma_addr_t;
typedef int spinlock_t;
enum dma_data_direction { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE };

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#ifndef ALIGN
#define ALIGN(x, a) (((x) + ((typeof(x))(a) - 1)) & ~((typeof(x))(a) - 1))
#endif
/* include/linux/swiotlb.h */
#define IO_TLB_SHIFT 11
#define IO_TLB_SIZE (1 << IO_TLB_SHIFT)
#define IO_TLB_SEGSIZE 128
#define INVALID_PHYS_ADDR (~(phys_addr_t)0)
#define DMA_MAPPING_ERROR (~(dma_addr_t)0)
#define DMA_ATTR_NO_WARN (1UL << 8)

#define BUG_ON(c) do { if (c) { fprintf(stderr, "BUG_ON %s:%d\n", __FILE__, __LINE__); abort(); } } while (0)
#define unlikely(x) (x)
#define spin_lock_irqsave(l, f) ((void)(l), (f) = 0)
#define spin_unlock_irqrestore(l, f) ((void)(l), (void)(f))
#define raw_smp_processor_id() 0
#define dev_warn_ratelimited(dev, ...) do { } while (0)
#define dev_WARN_ONCE(dev, c, ...) ((void)(c))
#define pr_warn_once(...) do { } while (0)
#define cc_platform_has(x) false
#define dma_reset_need_sync(dev) do { } while (0)

struct io_tlb_slot {
	phys_addr_t orig_addr;
	size_t alloc_size;
	unsigned short list;
	unsigned short pad_slots;
};

struct io_tlb_area {
	unsigned long used;
	unsigned int index;
	spinlock_t lock;
};

struct io_tlb_pool {
	phys_addr_t start;
	phys_addr_t end;
	void *vaddr;
	unsigned long nslabs;
	bool late_alloc;
	unsigned int nareas;
	unsigned int area_nslabs;
	struct io_tlb_area *areas;
	struct io_tlb_slot *slots;
};

struct io_tlb_mem {
	struct io_tlb_pool defpool;
	unsigned long nslabs;
};

struct device {
	struct io_tlb_mem *dma_io_tlb_mem;
	unsigned int min_align_mask;
	unsigned long seg_boundary;
};

static inline unsigned int dma_get_min_align_mask(struct device *dev) { return dev->min_align_mask; }
static inline unsigned long dma_get_seg_boundary(struct device *dev) { return dev->seg_boundary; }
static inline dma_addr_t phys_to_dma_unencrypted(struct device *dev, phys_addr_t p) { return p; }
/* The used-slot counters (CONFIG_DEBUG_FS) are not compared. */
static inline void inc_used_and_hiwater(struct io_tlb_mem *mem, unsigned int nslots) { }
static inline void dec_used(struct io_tlb_mem *mem, unsigned int nslots) { }
/* No bytes move in this target. */
static inline void swiotlb_bounce(struct device *dev, phys_addr_t tlb_addr, size_t size,
				  enum dma_data_direction dir, struct io_tlb_pool *mem) { }

#endif

/*
 * physr userspace shim for lib/scatterlist.c: a `struct page *` is a fake pointer, pfn * PAGE_SIZE,
 * never dereferenced, so page_to_pfn and page_to_phys are arithmetic. Allocations go through the
 * registry so the driver sees every scatterlist array in the order the kernel allocated them.
 */
#ifndef PHYSR_SHIM_MM_H
#define PHYSR_SHIM_MM_H

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../../common/alloc-registry.h"

typedef unsigned long dma_addr_t;

struct page {
	unsigned long flags;
};

/* 6.12's scatterlist.h takes &folio->page in sg_set_folio. */
struct folio {
	struct page page;
};

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define unlikely(x) (x)
#define likely(x) (x)
#define BUG_ON(x) assert(!(x))
#define BUG() abort()
#define WARN_ON(c) ({ int __w = !!(c); __w; })
#define WARN_ON_ONCE(c) WARN_ON(c)

#define ALIGN(x, a) (((x) + ((typeof(x))(a) - 1)) & ~((typeof(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((typeof(x))(a) - 1))
#define PAGE_ALIGN(x) ALIGN(x, PAGE_SIZE)
#define offset_in_page(p) ((unsigned long)(p) & ~PAGE_MASK)

#define page_to_pfn(p) ((unsigned long)(p) / PAGE_SIZE)
#define pfn_to_page(pfn) ((struct page *)((unsigned long)(pfn) * PAGE_SIZE))
#define nth_page(p, n) pfn_to_page(page_to_pfn(p) + (n))
#define page_to_phys(p) ((unsigned long)page_to_pfn(p) << PAGE_SHIFT)
#define virt_to_page(x) ((struct page *)(x))
#define page_address(x) ((void *)(x))

/* No ZONE_DEVICE pages in these tests: every pair shares its (absent) pgmap. */
static inline bool zone_device_pages_have_same_pgmap(const struct page *a, const struct page *b)
{
	return true;
}

#define min_t(type, x, y) ({ type __a = (x); type __b = (y); __a < __b ? __a : __b; })
#define min(x, y) ({ typeof(x) __a = (x); typeof(y) __b = (y); __a < __b ? __a : __b; })

static inline unsigned long __get_free_page(unsigned int gfp)
{
	return (unsigned long)physr_alloc(PAGE_SIZE);
}

static inline void free_page(unsigned long p)
{
	physr_free((void *)p);
}

static inline void *kmalloc_array(unsigned long n, unsigned long size, unsigned int gfp)
{
	return physr_alloc(n * size);
}

#define kfree(p) physr_free(p)
#define kmemleak_alloc(a, b, c, d) do { } while (0)
#define kmemleak_free(a) do { } while (0)

#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) ((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)
static inline void *ERR_PTR(long error) { return (void *)error; }
static inline long PTR_ERR(const void *ptr) { return (long)ptr; }
static inline bool IS_ERR(const void *ptr) { return IS_ERR_VALUE((unsigned long)ptr); }

#define IS_ENABLED(x) 0
#define EXPORT_SYMBOL(x)
#define EXPORT_SYMBOL_GPL(x)

#endif

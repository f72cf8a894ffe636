/*
 * physr userspace shim for drivers/iommu/iova.c, compiled whole: one CPU, no locking, allocations
 * through the registry, delayed work never runs (a test case is far shorter than the 100 ms depot
 * delay), and CPU hotplug is absent. The rbtree is the kernel's own (tools/lib/rbtree.c).
 */
#ifndef PHYSR_IOVA_SHIM_H
#define PHYSR_IOVA_SHIM_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/bitops.h>
#include <linux/log2.h>
#include <linux/err.h>
#include "../common/alloc-registry.h"

typedef unsigned long dma_addr_t;

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define GFP_KERNEL 0
#define GFP_ATOMIC 0
#define __GFP_NOWARN 0
#define SLAB_HWCACHE_ALIGN 0
#define __percpu
#define IS_REACHABLE(x) 1
#define CONFIG_IOMMU_IOVA 1
#define EXPORT_SYMBOL_GPL(x)
#define MODULE_AUTHOR(x)
#define MODULE_DESCRIPTION(x)
#define MODULE_LICENSE(x)
#define pr_err(...) fprintf(stderr, __VA_ARGS__)
#define BUG_ON(c) do { if (c) abort(); } while (0)
#ifndef WARN_ON
#define WARN_ON(c) ({ int __w = !!(c); if (__w) fprintf(stderr, "WARN_ON %s:%d\n", __FILE__, __LINE__); __w; })
#endif
#define static_assert(...)
#define cache_line_size() 64

/* One CPU. */
#define NR_CPUS 1
#define for_each_possible_cpu(cpu) for ((cpu) = 0; (cpu) < 1; (cpu)++)
#define for_each_online_cpu(cpu) for ((cpu) = 0; (cpu) < 1; (cpu)++)
#define num_online_cpus() 1U
#define per_cpu_ptr(p, cpu) (p)
#define raw_cpu_ptr(p) (p)
#define this_cpu_ptr(p) (p)
static inline void *__alloc_percpu(size_t size, size_t align) { return physr_alloc(size); }
static inline void free_percpu(void *p) { physr_free(p); }

/* No concurrency. */
typedef int spinlock_t;
#define spin_lock_init(l) (*(l) = 0)
#define spin_lock(l) ((void)(l))
#define spin_unlock(l) ((void)(l))
#define spin_lock_irqsave(l, f) ((void)(l), (f) = 0)
#define spin_unlock_irqrestore(l, f) ((void)(l), (void)(f))
#define assert_spin_locked(l) ((void)(l))
struct mutex { int unused; };
#define DEFINE_MUTEX(m) struct mutex m
#define mutex_lock(m) ((void)(m))
#define mutex_unlock(m) ((void)(m))

/* Allocation. */
struct kmem_cache { size_t size; };
static inline struct kmem_cache *kmem_cache_create(const char *name, size_t size, size_t align,
						   unsigned long flags, void *ctor)
{
	struct kmem_cache *c = malloc(sizeof(*c));

	c->size = size;
	return c;
}
static inline void kmem_cache_destroy(struct kmem_cache *c) { free(c); }
static inline void *kmem_cache_zalloc(struct kmem_cache *c, gfp_t gfp) { return physr_alloc(c->size); }
static inline void *kmem_cache_alloc(struct kmem_cache *c, gfp_t gfp) { return physr_alloc(c->size); }
static inline void kmem_cache_free(struct kmem_cache *c, void *p) { physr_free(p); }
static inline void *kcalloc(size_t n, size_t size, gfp_t gfp) { return physr_alloc(n * size); }
static inline void *kzalloc(size_t size, gfp_t gfp) { return physr_alloc(size); }
#define kfree(p) physr_free(p)
#define kmemleak_ignore(p) do { } while (0)
#define kmemleak_transient_leak(p) do { } while (0)
#define swap(a, b) do { typeof(a) __t = (a); (a) = (b); (b) = __t; } while (0)
/* order_base_2(n): ceil(log2(n)), 0 for n <= 1 (include/linux/log2.h). */
#define order_base_2(n) ((n) > 1 ? ilog2((n) - 1) + 1 : 0)

/* Deferred work never runs within a case. */
struct work_struct { int unused; };
struct delayed_work { struct work_struct work; };
#define INIT_DELAYED_WORK(w, f) ((void)(w), (void)(f))
#define schedule_delayed_work(w, d) ((void)(w), (void)(d), true)
#define cancel_delayed_work_sync(w) ((void)(w), false)
#define msecs_to_jiffies(m) (m)
#define container_of_work(w) (w)
#define to_delayed_work(w) ((struct delayed_work *)(w))

/* CPU hotplug: not modelled. */
#define CPUHP_IOMMU_IOVA_DEAD 0
#define cpuhp_state_add_instance_nocalls(s, n) ((void)(n), 0)
#define cpuhp_state_remove_instance_nocalls(s, n) ((void)(n), 0)
#define cpuhp_setup_state_multi(s, name, a, b) ((void)(b), 0)
#define cpuhp_remove_multi_state(s) do { } while (0)
#define hlist_entry_safe(ptr, type, member) container_of(ptr, type, member)

#endif

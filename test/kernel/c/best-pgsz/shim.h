/*
 * physr userspace shim for ib_umem_find_best_pgsz (drivers/infiniband/core/umem.c, extracted by
 * name): the umem fields it reads, and the bit helpers it calls. The scatterlist comes from the
 * kernel's own include/linux/scatterlist.h with the scatterlist target's shims.
 */
#ifndef PHYSR_BEST_PGSZ_SHIM_H
#define PHYSR_BEST_PGSZ_SHIM_H

#include <linux/scatterlist.h>


#define BITS_PER_LONG 64
#define BIT(n) (1UL << (n))
#define GENMASK(h, l) ((~0UL >> (63 - (h))) & (~0UL << (l)))
#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)
#define count_trailing_zeros(x) __builtin_ctzl(x)
#define EXPORT_SYMBOL(x)

static inline unsigned int physr_fls64(u64 x) { return x ? 64 - __builtin_clzll(x) : 0; }
/* bits_per(n): bits needed to hold n, 1 for 0 and 1 (include/linux/log2.h). */
#define bits_per(n) ((n) < 2 ? 1 : physr_fls64(n))
static inline unsigned long rounddown_pow_of_two(unsigned long n) { return 1UL << (63 - __builtin_clzl(n)); }

struct ib_umem {
	u64 iova;
	size_t length;
	unsigned long address;
	unsigned int is_odp : 1;
	struct sg_append_table sgt_append;
};

/* No on-demand-paging umems here: is_odp is always 0, so this is never reached. */
struct ib_umem_odp {
	unsigned int page_shift;
};
static inline struct ib_umem_odp *to_ib_umem_odp(struct ib_umem *umem) { abort(); }

#endif

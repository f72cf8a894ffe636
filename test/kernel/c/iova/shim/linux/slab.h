/* physr userspace shim: linux/slab.h is covered by iova-shim.h. */

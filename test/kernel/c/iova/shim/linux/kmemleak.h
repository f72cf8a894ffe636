/* physr userspace shim: linux/kmemleak.h is covered by iova-shim.h. */

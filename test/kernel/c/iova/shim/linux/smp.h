/* physr userspace shim: linux/smp.h is covered by iova-shim.h. */

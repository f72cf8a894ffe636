/* physr userspace shim: linux/module.h is covered by iova-shim.h. */

/* physr userspace shim: linux/cpu.h is covered by iova-shim.h. */

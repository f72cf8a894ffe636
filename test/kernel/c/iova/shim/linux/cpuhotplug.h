/* physr userspace shim: linux/cpuhotplug.h is covered by iova-shim.h. */

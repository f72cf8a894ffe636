/* physr userspace shim: linux/atomic.h, nothing the extracted code needs. */

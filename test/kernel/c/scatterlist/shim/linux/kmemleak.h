/* physr userspace shim: linux/kmemleak.h has nothing the extracted code needs. */

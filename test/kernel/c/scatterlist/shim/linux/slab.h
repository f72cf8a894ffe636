/* physr userspace shim: linux/slab.h has nothing the extracted code needs. */

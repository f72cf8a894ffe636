/* physr userspace shim: linux/highmem.h has nothing the extracted code needs. */

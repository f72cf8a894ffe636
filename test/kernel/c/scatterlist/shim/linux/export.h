/* physr userspace shim: linux/export.h has nothing the extracted code needs. */

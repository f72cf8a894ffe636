/* physr userspace shim: asm/io.h has nothing the extracted code needs. */

/* physr userspace shim: linux/dma-mapping.h is covered by iova-shim.h. */

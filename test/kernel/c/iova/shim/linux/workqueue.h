/* physr userspace shim: linux/workqueue.h is covered by iova-shim.h. */

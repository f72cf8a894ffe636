/* physr userspace shim: linux/slab.h is covered by iommu-shim.h here. */
#include "../../iommu-shim.h"

/* physr userspace shim: linux/iommu.h is covered by iommu-shim.h here. */
#include "../../iommu-shim.h"

/* physr userspace shim: linux/dma-mapping.h is covered by iommu-shim.h here. */
#include "../../iommu-shim.h"

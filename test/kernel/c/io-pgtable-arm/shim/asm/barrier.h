/* physr userspace shim: asm/barrier.h is covered by iommu-shim.h here. */
#include "../../iommu-shim.h"

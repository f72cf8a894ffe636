/**
 * What one unmap batch must invalidate (struct iommu_iotlb_gather in include/linux/iommu.h): the
 * union of the IOVA ranges whose leaves were cleared and the table pages freed on the way. The owner
 * syncs it once, so a batch costs one IOTLB flush however many leaves it cleared.
 *
 * The kernel may sync early when a driver cannot describe disjoint ranges in one invalidation
 * (iommu_iotlb_gather_is_disjoint); here a gather always widens to cover both, which every IOMMU
 * accepts as a (larger) range invalidation.
 */
export class IotlbGather {
  /** First IOVA to invalidate; meaningful only when `!isEmpty()`. */
  start = 0n;
  /** Last IOVA to invalidate (inclusive). */
  last = 0n;
  /** Largest leaf size seen: a range flush may use it as its granule. */
  pgsize = 0n;
  /** Table pages freed by the batch (their walk-cache entries go with the flush). */
  freedTablePages = 0;
  private empty = true;

  isEmpty(): boolean {
    return this.empty;
  }

  /** Adds `[iova, iova + size - 1]` (iommu_iotlb_gather_add_range). */
  addRange(iova: bigint, size: bigint, pgsize = size): void {
    const last = iova + size - 1n;
    if (this.empty) {
      this.start = iova;
      this.last = last;
      this.empty = false;
    } else {
      if (iova < this.start) this.start = iova;
      if (last > this.last) this.last = last;
    }
    if (pgsize > this.pgsize) this.pgsize = pgsize;
  }

  reset(): void {
    this.start = 0n;
    this.last = 0n;
    this.pgsize = 0n;
    this.freedTablePages = 0;
    this.empty = true;
  }
}

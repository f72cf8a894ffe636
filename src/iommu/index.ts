/** The IOMMU layer's public face: page-table formats, IO page tables, IOVA allocator, domains, IOTLB. */
export * from './domain.ts';
export * from './format.ts';
export * from './gather.ts';
export * from './iommu.ts';
export * from './iotlb.ts';
export * from './iova.ts';
export * from './page-table.ts';
export * from './pgsize.ts';
export * from './prot.ts';

/** The physr library: every piece's public face. */
export * from './block/index.ts';
export * from './core/index.ts';
export * from './devices/index.ts';
export * from './dma/index.ts';
export * from './dmabuf/index.ts';
export * from './iommu/index.ts';
export * from './iommufd/index.ts';
export * from './mm/index.ts';
export * from './platform/index.ts';
export * from './rdma/index.ts';
export * from './sim/index.ts';
export * from './trace/index.ts';
export * from './vfio/index.ts';
export * from './view/index.ts';

/**
 * The DMA layer's public face: the Machine and its DmaDevice, the physr map API (IOVA layout packed
 * or aligned: iova-layout.ts), the IOVA API, dma-direct, map_sg, swiotlb, dma-debug.
 */
export * from './classify.ts';
export * from './debug.ts';
export * from './device.ts';
export * from './direct.ts';
export * from './dma-iommu.ts';
export * from './iommu-map-phys.ts';
export * from './iova-api.ts';
export * from './iova-layout.ts';
export * from './machine.ts';
export * from './map.ts';
export * from './map-phys.ts';
export * from './map-sg.ts';
export * from './mapped-piece.ts';
export * from './mapping.ts';
export * from './merge-boundary.ts';
export * from './swiotlb.ts';
export * from './types.ts';

/** The DMA layer's public face: the Machine, DmaDevice, the physr map API (IOVA layout packed or aligned: iova-layout.ts), the IOVA API, map_sg, swiotlb, dma-debug. */
export * from './debug.ts';
export * from './device.ts';
export * from './iova-api.ts';
export * from './iova-layout.ts';
export * from './machine.ts';
export * from './map.ts';
export * from './map-sg.ts';
export * from './swiotlb.ts';
export * from './types.ts';

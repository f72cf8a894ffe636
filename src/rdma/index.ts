export * from './best-pgsz.ts';
export * from './device.ts';
export * from './dma-device.ts';
export * from './mr.ts';
export * from './umem.ts';
export * from './umem-dmabuf.ts';

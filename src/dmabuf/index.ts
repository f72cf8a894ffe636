/** dma-buf: exporters hand out physical range lists, importers map them for their devices. */
export * from './dma-buf.ts';
export * from './dma-device-importer.ts';
export * from './fence.ts';
export * from './phyr-exporter.ts';
export * from './phys-vec-sgt.ts';

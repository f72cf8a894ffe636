export * from './pci-types.ts';
export * from './byte-store.ts';
export * from './memory-map.ts';

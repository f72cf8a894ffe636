export * from './pci-types.ts';
export * from './byte-store.ts';
export * from './memory-map.ts';
export * from './p2pdma.ts';
export * from './pci-acs.ts';
export { type BdfParts, devfnOf, formatBdf, parseBdf, parseBdfParts, slotOf } from './pci-bdf.ts';
export * from './pci-builder.ts';
export * from './pci-query.ts';
export * from './folio-allocator.ts';

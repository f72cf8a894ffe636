export * from './pci-types.ts';

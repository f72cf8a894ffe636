/** vfio-pci: BAR ranges exported as dma-bufs, revoked on reset, memory disable and close. */
export * from './vfio-pci.ts';

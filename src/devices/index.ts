/** Devices that move bytes: DMA routing through the PCI fabric and IOMMU, and example devices. */
export * from './device.ts';
export * from './gpu.ts';
export * from './machine-fabric.ts';
export * from './nic.ts';
export * from './nvme.ts';
export * from './routing.ts';

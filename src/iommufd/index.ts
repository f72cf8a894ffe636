/** iommufd: IOAS with areas, user memory and dma-buf maps, hardware page tables, revoke handling. */
export * from './area-tree.ts';
export * from './hw-pagetable.ts';
export * from './io-pagetable.ts';
export * from './mm-pinner.ts';
export * from './pages.ts';

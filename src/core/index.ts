export * from './address.ts';
export * from './errors.ts';
export * from './input-file.ts';
export * from './metrics.ts';
export * from './random.ts';
export * from './range-list.ts';
export * from './range-list-builder.ts';
export * from './sg-table.ts';

export * from './address.ts';
export * from './errors.ts';
export * from './metrics.ts';
export * from './random.ts';

/**
 * Replay of the kernel's own dma:/iommu:/swiotlb: trace events (tracefs text, `trace-cmd report`):
 * streaming parser, per-device mapping state and DMA-API misuse findings, what physr would change.
 */

export * from './analyze.ts';
export * from './event-fields.ts';
export * from './events.ts';
export * from './findings.ts';
export * from './live-ranges.ts';
export * from './model-replay.ts';
export * from './parse-event.ts';
export * from './read-trace.ts';
export * from './render.ts';
export * from './replay.ts';
export * from './timeline.ts';
export * from './trace-line.ts';
export * from './trace-writer.ts';

import { coreBenchmark } from './core.bench.ts';
import { devicesBenchmark } from './devices.bench.ts';
import { dmaBenchmark } from './dma.bench.ts';
import type { Benchmark } from './harness.ts';
import { iommuBenchmark, iommuHugeMapBenchmark } from './iommu.bench.ts';
import { basePagesBenchmark, pinBenchmark } from './mm.bench.ts';
import { p2pMatrixBenchmark } from './p2p-matrix.bench.ts';
import { platformMemoryBenchmark } from './platform.bench.ts';
import { traceBenchmark } from './trace.bench.ts';

/** Every benchmark `npm run bench` runs, in order. Add new ones here. */
export const suite: Benchmark[] = [
  coreBenchmark,
  platformMemoryBenchmark,
  iommuBenchmark,
  iommuHugeMapBenchmark,
  dmaBenchmark,
  devicesBenchmark,
  pinBenchmark,
  basePagesBenchmark,
  p2pMatrixBenchmark,
  traceBenchmark,
];

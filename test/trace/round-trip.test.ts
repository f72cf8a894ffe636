import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  builtinScenarioNames,
  loadScenarioFile,
  registerBuiltins,
  resolveScenarioTarget,
  runScenario,
} from '../../src/sim/index.ts';
import { readTraceStream } from '../../src/trace/read-trace.ts';
import { TraceReplay } from '../../src/trace/replay.ts';
import { createTraceWriter } from '../../src/trace/trace-writer.ts';

const PAGE_BYTES: Record<string, bigint> = { '4K': 1n << 12n, '2M': 1n << 21n, '1G': 1n << 30n };
const API_MISUSE = [
  'unmap-never-mapped',
  'double-unmap',
  'size-mismatch',
  'dir-mismatch',
  'wrong-function',
  'sync-not-mapped',
];
const FAULTS = ['use-after-unmap', 'fault-never-mapped', 'fault-on-live-mapping'];

registerBuiltins();

describe('physr run --trace-out reads back to the run its own counts', () => {
  for (const name of builtinScenarioNames()) {
    it(name, async () => {
      const writer = createTraceWriter();
      const report = await runScenario(loadScenarioFile(resolveScenarioTarget(name)), {
        traceSink: writer.sink,
      });
      const replay = new TraceReplay();
      const stats = await readTraceStream(Readable.from([writer.text()]), name, (e) => replay.onEvent(e));
      const r = replay.finish();
      const m = report.metrics;
      const counter = (k: string) => m[k] ?? 0;
      const devices = [...r.devices.values()];
      const sum = (f: (d: (typeof devices)[number]) => number) => devices.reduce((n, d) => n + f(d), 0);
      expect(stats.unknown.size).toBe(0);
      // Mappings: every map the model made is one event.
      expect(sum((d) => d.maps + d.sgMaps + d.allocs)).toBe(counter('dma.maps'));
      expect(sum((d) => d.unmaps + d.sgUnmaps + d.frees)).toBe(counter('dma.unmaps'));
      expect([...r.liveAtEnd.values()].reduce((a, b) => a + b, 0)).toBe(
        counter('dma.maps') - counter('dma.unmaps'),
      );
      // Bytes: what iommu:map events cover is what the page table got as leaves.
      const leafBytes = Object.entries(m)
        .filter(([k]) => k.startsWith('iommu.leaf_pte_writes.'))
        .reduce((s, [k, v]) => s + BigInt(v) * PAGE_BYTES[k.slice('iommu.leaf_pte_writes.'.length)]!, 0n);
      expect(r.iommu.mappedBytes).toBe(leafBytes);
      // Faults, and the misuse dma-debug saw.
      expect(sum((d) => d.faults)).toBe(counter('iommu.faults'));
      const found = (classes: string[]) =>
        [...r.findingCounts].filter(([c]) => classes.includes(c)).reduce((n, [, k]) => n + k, 0);
      expect(found(FAULTS)).toBe(counter('iommu.faults'));
      const debugMisuse = Object.entries(m)
        .filter(([k]) => /^dma_debug\.(unmap-|sync-not-mapped)/.test(k))
        .reduce((n, [, v]) => n + v, 0);
      expect(found(API_MISUSE)).toBe(debugMisuse);
    });
  }
});

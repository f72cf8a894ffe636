import { createReadStream, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtinMachine } from '../../src/dma/index.ts';
import { resolveDevice } from '../../src/platform/index.ts';
import { type IommuMode, ModelReplay } from '../../src/trace/model-replay.ts';
import { readTraceStream } from '../../src/trace/read-trace.ts';
import { comparisonRows } from '../../src/trace/render.ts';
import { TraceReplay } from '../../src/trace/replay.ts';

const GPU = '../shared/data/captures/gpu-vm-6.18/dma-trace.txt';

async function compare(mode: IommuMode, path = GPU) {
  const machine = () =>
    builtinMachine('two-socket-server', { iommu: mode !== 'off', strict: mode !== 'lazy' });
  const device = resolveDevice(machine().platform.topology, 'gpu0');
  const model = new ModelReplay({ machine, device, mode });
  const replay = new TraceReplay({ onMap: (m) => model.onMap(m), onUnmap: (m, at) => model.onUnmap(m, at) });
  await readTraceStream(createReadStream(path), path, (e) => replay.onEvent(e));
  replay.finish();
  return model.finish();
}

/** The sg lists of the trace, parsed here with a plain regex (independent of the parser). */
function sgLists(): { phys: bigint[]; sizes: bigint[] }[] {
  const out: { phys: bigint[]; sizes: bigint[] }[] = [];
  for (const l of readFileSync(GPU, 'utf8').split('\n')) {
    const m = / dma_map_sg: .* sizes=\{([^}]*)\} phys_addrs=\{([^}]*)\}/.exec(l);
    if (m === null) continue;
    out.push({ sizes: m[1]!.split(',').map((x) => BigInt(x)), phys: m[2]!.split(',').map((x) => BigInt(x)) });
  }
  return out;
}

/** Ranges after merging entries that continue the previous one physically. */
function expectedRanges(list: { phys: bigint[]; sizes: bigint[] }): number {
  let n = 0;
  for (let i = 0; i < list.phys.length; i++)
    if (i === 0 || list.phys[i] !== list.phys[i - 1]! + list.sizes[i - 1]!) n++;
  return n;
}

describe('replaying the 6.18 GPU trace through the model', () => {
  it('the 34-entry list becomes the expected number of physr ranges, and all lists together', async () => {
    const lists = sgLists();
    const big = lists.find((l) => l.phys.length === 34)!;
    expect(big).toBeDefined();
    const c = await compare('strict');
    expect(c.legacy.listEntries).toBe(lists.reduce((n, l) => n + l.phys.length, 0));
    expect(c.physr.listEntries).toBe(lists.reduce((n, l) => n + expectedRanges(l), 0));
    // The 34-entry list alone, through the same builder rule.
    const only34 = new ModelReplay({
      machine: () => builtinMachine('two-socket-server'),
      device: resolveDevice(builtinMachine('two-socket-server').platform.topology, 'gpu0'),
      mode: 'strict',
    });
    const tr = new TraceReplay({
      onMap: (m) => m.event.kind === 'map_sg' && m.event.nents === 34 && only34.onMap(m),
    });
    await readTraceStream(createReadStream(GPU), GPU, (e) => tr.onEvent(e));
    expect(only34.finish().physr.listEntries).toBe(expectedRanges(big));
  });
  it('strict: physr holds 16 bytes a range plus one IOVA range per list; legacy 32 bytes an entry plus the table', async () => {
    const c = await compare('strict');
    const lists = sgLists();
    const entries = lists.reduce((n, l) => n + l.phys.length, 0);
    const ranges = lists.reduce((n, l) => n + expectedRanges(l), 0);
    expect(c.legacy.metadataBytes).toBe(entries * 32 + lists.length * 16);
    expect(c.physr.metadataBytes).toBe(ranges * 16 + lists.length * 16);
    expect(c.legacy.failedMaps + c.physr.failedMaps).toBe(0);
    // Both designs take one IOVA per list and one per single mapping; strict flushes per unmap.
    const singles = readFileSync(GPU, 'utf8')
      .split('\n')
      .filter((l) => l.includes(' dma_map_phys: ')).length;
    expect(c.physr.iovaAllocations).toBe(singles + lists.length);
    expect(c.legacy.iotlbFlushes).toBe(singles + lists.length);
  });
  it('without an IOMMU nothing is written to page tables, and physr keeps one DMA range per range', async () => {
    const c = await compare('off');
    expect([c.legacy.pteWrites, c.physr.pteWrites, c.legacy.iovaAllocations]).toEqual([0, 0, 0]);
    const lists = sgLists();
    const ranges = lists.reduce((n, l) => n + expectedRanges(l), 0);
    expect(c.physr.metadataBytes).toBe(2 * ranges * 16);
  });
  it('rows state which way each ratio is better', async () => {
    const c = await compare('strict');
    const meta = comparisonRows(c.legacy, c.physr).find((r) => r.metric === 'list metadata')!;
    expect(meta.ratio).toBeCloseTo(c.physr.metadataBytes / c.legacy.metadataBytes, 10);
    expect(meta.verdict).toBe(`physr ${meta.ratio!.toFixed(2)}x of legacy (lower is better: physr better)`);
  });
});

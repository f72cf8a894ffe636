/**
 * Platform memory: memory-map lookup, byte-store throughput, buddy allocator rate and the cost of
 * fragmenting a large machine. All built in code; no capture needed.
 */
import { ByteStore, type Folio, FolioAllocator, MemoryMap } from '../src/platform/index.ts';
import { type Benchmark, type Figure, measure, timeSeconds } from './harness.ts';

const GiB = 1n << 30n;

/** A map like a 2-socket server: RAM per node, firmware holes and `bars` BARs high up. */
function serverMap(bars: number, ramGiB: bigint): MemoryMap {
  const map = new MemoryMap([
    { kind: 'reserved', start: 0n, last: 0xfffn },
    { kind: 'ram', start: 0x1000n, last: 0x9ffffn, node: 0 },
    { kind: 'ram', start: 0x10_0000n, last: 0x7fff_ffffn, node: 0 },
    { kind: 'reserved', start: 0xfe00_0000n, last: 0xffff_ffffn },
    { kind: 'ram', start: 4n * GiB, last: 4n * GiB + (ramGiB / 2n) * GiB - 1n, node: 0 },
    { kind: 'ram', start: 4n * GiB + (ramGiB / 2n) * GiB, last: 4n * GiB + ramGiB * GiB - 1n, node: 1 },
  ]);
  for (let i = 0; i < bars; i++) {
    const start = 0x2000_0000_0000n + BigInt(i) * 0x1_0000_0000n;
    map.add({
      kind: 'mmio',
      start,
      last: start + 0xffff_ffffn,
      bdf: `0000:${(i & 0xff).toString(16).padStart(2, '0')}:00.0`,
    });
  }
  return map;
}

export const platformMemoryBenchmark: Benchmark = {
  name: 'platform-memory',
  description: 'memory-map lookups, sparse byte store copy, buddy alloc/free, fragmenting a large machine',
  async run(ctx) {
    const figures: Figure[] = [];
    const map = serverMap(ctx.size(4096, 16), 64n);
    const probes = ctx.size(1_000_000, 1000);
    const addrs = new BigUint64Array(probes);
    for (let i = 0; i < probes; i++) addrs[i] = BigInt(i) * 0x1234_5678_9n;
    figures.push(
      await measure(ctx, `map lookup (${map.size} regions)`, 'M lookups/s', () => {
        let hits = 0;
        const s = timeSeconds(() => {
          for (let i = 0; i < probes; i++) if (map.lookup(addrs[i]!) !== undefined) hits++;
        });
        return hits >= 0 ? probes / s / 1e6 : 0;
      }),
    );

    const bytes = ctx.size(64 << 20, 1 << 16);
    const store = new ByteStore();
    store.fill(0x1_0000_0000n, bytes, 0xa5);
    figures.push(
      await measure(
        ctx,
        'byte store copy (page-unaligned)',
        'GiB/s',
        () => {
          const s = timeSeconds(() => store.copy(0x1_0000_0000n, 0x2_0000_0123n, bytes));
          return bytes / s / 2 ** 30;
        },
        { note: `${store.residentBytes >> 20} MiB resident` },
      ),
    );

    const ops = ctx.size(200_000, 2000);
    figures.push(
      await measure(ctx, 'buddy alloc+free order 0..9 mix', 'M ops/s', () => {
        const alloc = new FolioAllocator(map);
        const live: Folio[] = [];
        const s = timeSeconds(() => {
          for (let i = 0; i < ops; i++) live.push(alloc.allocFolio(i % 10 === 0 ? 9 : i % 4));
          for (let i = live.length - 1; i >= 0; i -= 2) alloc.freeFolio(live[i]!);
        });
        return (ops * 1.5) / s / 1e6;
      }),
    );

    const fragMap = serverMap(0, BigInt(ctx.size(256, 2)));
    figures.push(
      await measure(ctx, `fragment ${ctx.size(256, 2)} GiB at 30%`, 'ms', () => {
        const alloc = new FolioAllocator(fragMap);
        return timeSeconds(() => alloc.fragment(1, { fraction: 0.3 })) * 1e3;
      }),
    );
    return figures;
  },
};

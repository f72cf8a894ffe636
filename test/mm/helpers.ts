import { Metrics } from '../../src/core/index.ts';
import { MemorySystem, type MemorySystemOptions, MmStruct } from '../../src/mm/index.ts';
import { ByteStore, FolioAllocator, MemoryMap } from '../../src/platform/index.ts';

export const MiB = 1n << 20n;
export const GiB = 1n << 30n;

/** A machine with `ramGiB` of RAM at 4 GiB (node 0), a BAR at 0x3800_0000_0000 and a byte store. */
export function machine(
  options: { ramGiB?: number; anonOrders?: readonly number[] } & Omit<
    MemorySystemOptions,
    'bytes' | 'metrics'
  > = {},
) {
  const ram = BigInt(options.ramGiB ?? 4) * GiB;
  const map = new MemoryMap([
    { kind: 'ram', start: 4n * GiB, last: 4n * GiB + ram - 1n, node: 0 },
    { kind: 'mmio', start: 0x3800_0000_0000n, last: 0x3800_0fff_ffffn, barIndex: 0 },
  ]);
  const metrics = new Metrics();
  const allocator = new FolioAllocator(map, { metrics });
  const bytes = new ByteStore();
  const system = new MemorySystem(allocator, { bytes, metrics, anonOrders: options.anonOrders });
  const mm = new MmStruct(system);
  return { map, allocator, system, mm, bytes, metrics };
}

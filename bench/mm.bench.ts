/**
 * pin_user_pages of a buffer backed by 4K folios (scattered: one page of every 8K taken elsewhere), 2M THPs
 * and 1G hugetlb pages: ranges the physr form produces against the legacy page array's entries,
 * metadata bytes both ways, and the time of pin + unpin (median of runs; the faults happen once,
 * before measuring).
 */
import { formatSize } from '../src/core/index.ts';
import {
  MemorySystem,
  type MmapOptions,
  MmStruct,
  pinUserPages,
  pinUserPagesLegacy,
  unpinUserPages,
  unpinUserPagesLegacy,
} from '../src/mm/index.ts';
import { FolioAllocator, MemoryMap } from '../src/platform/index.ts';
import {
  type Benchmark,
  collectGarbage,
  cpuSeconds,
  type Figure,
  figure,
  heapBytes,
  measure,
  timeSeconds,
} from './harness.ts';

const MiB = 1n << 20n;
const GiB = 1n << 30n;

type Backing = '4K' | '2M' | '1G';

function setup(backing: Backing, bytes: bigint): { mm: MmStruct; va: bigint } {
  const ram = backing === '4K' ? 2n * bytes + 64n * MiB : backing === '2M' ? bytes + 64n * MiB : 2n * GiB;
  const map = new MemoryMap([{ kind: 'ram', start: 4n * GiB, last: 4n * GiB + ram - 1n, node: 0 }]);
  const allocator = new FolioAllocator(map);
  // 4K: one page of every 8K is taken (at a random end), so most neighbouring pages are not adjacent.
  if (backing === '4K') allocator.fragment(1, { fraction: 1, pageblockOrder: 1, maxScatterOrder: 0 });
  const system = new MemorySystem(allocator, { anonOrders: backing === '2M' ? [9] : [] });
  if (backing === '1G') system.reserveHugetlb(18, 1);
  const mm = new MmStruct(system);
  const options: MmapOptions =
    backing === '1G'
      ? { kind: 'hugetlb', hugeOrder: 18, length: bytes }
      : { kind: 'anon', length: bytes, address: 0x10_0000_0000n };
  const va = mm.mmap(options);
  mm.touch(va, bytes, { write: true });
  return { mm, va };
}

export const pinBenchmark: Benchmark = {
  name: 'pin',
  description: 'pin_user_pages of 1 GiB (4K/2M/1G folios): physr ranges vs legacy page entries, bytes, time',
  async run(ctx) {
    const figures: Figure[] = [];
    const bytes = BigInt(ctx.size(1 << 30, 4 << 20));
    const size = formatSize(bytes);
    for (const backing of ['4K', '2M', '1G'] as const) {
      const { mm, va } = setup(backing, bytes);
      const pin = pinUserPages(mm, va, bytes, { write: true, longterm: true });
      const legacy = pinUserPagesLegacy(mm, va, bytes, { write: true, longterm: true });
      const note = `${size} over ${backing} folios`;
      figures.push(figure(`${backing}: physr ranges`, 'ranges', [pin.phyrs.count], { note }));
      figures.push(figure(`${backing}: legacy page entries`, 'pages', [legacy.pages.length], { note }));
      figures.push(
        figure(`${backing}: physr metadata`, 'bytes', [pin.metadataBytes], { note: '16 B a range' }),
      );
      figures.push(
        figure(`${backing}: legacy metadata`, 'bytes', [legacy.metadataBytes], {
          note: `8 B a page, ${(legacy.metadataBytes / pin.metadataBytes).toFixed(2)}x physr`,
        }),
      );
      unpinUserPages(pin);
      unpinUserPagesLegacy(legacy);
      figures.push(
        await measure(
          ctx,
          `${backing}: pin+unpin physr`,
          'ms',
          () =>
            timeSeconds(() => unpinUserPages(pinUserPages(mm, va, bytes, { write: true, longterm: true }))) *
            1e3,
        ),
      );
      figures.push(
        await measure(
          ctx,
          `${backing}: pin+unpin legacy`,
          'ms',
          () =>
            timeSeconds(() =>
              unpinUserPagesLegacy(pinUserPagesLegacy(mm, va, bytes, { write: true, longterm: true })),
            ) * 1e3,
        ),
      );
    }
    return figures;
  },
};

/**
 * 64 GiB of anonymous base pages on a 128 GiB two-node machine (x86-2s's RAM): fault in (16 Mi
 * order-0 folios), pin in the physr form, unpin, pin as the legacy page array, unpin, munmap. The
 * pages are runs of memmap state: the figures are the model's CPU time for the whole cycle and
 * the heap + ArrayBuffer bytes a page the faulted, pinned buffer holds (the memmap's 9 B a page,
 * plus the page table's few extents), against the 273 B a page (measured at 1 GiB) when each 4K
 * folio was an object.
 */
export const basePagesBenchmark: Benchmark = {
  name: 'base-pages',
  description: 'allocate + pin + unpin + free 64 GiB of 4K base pages: model CPU time and bytes a page',
  async run(ctx) {
    const bytes = BigInt(ctx.size(2 ** 36, 2 ** 26));
    const pages = Number(bytes >> 12n);
    const size = formatSize(bytes);
    const map = new MemoryMap([
      { kind: 'ram', start: 4n * GiB, last: 68n * GiB - 1n, node: 0 },
      { kind: 'ram', start: 68n * GiB, last: 132n * GiB - 1n, node: 1 },
    ]);
    const perPage: number[] = [];
    const cycle = () => {
      const allocator = new FolioAllocator(map);
      const mm = new MmStruct(new MemorySystem(allocator, { anonOrders: [] }));
      collectGarbage();
      const before = heapBytes();
      const seconds = cpuSeconds(() => {
        const va = mm.mmap({ kind: 'anon', length: bytes });
        mm.touch(va, bytes, { write: true });
        const pin = pinUserPages(mm, va, bytes, { write: true, longterm: true });
        collectGarbage();
        perPage.push((heapBytes() - before) / pages);
        unpinUserPages(pin, { dirty: true });
        unpinUserPagesLegacy(pinUserPagesLegacy(mm, va, bytes, { write: true, longterm: true }), {
          dirty: true,
        });
        mm.munmap(va, bytes);
      });
      if (allocator.freePages !== allocator.totalPages) throw new Error('base pages leaked');
      return seconds * 1e3;
    };
    const time = await measure(ctx, `${size}: fault+pin+unpin+legacy pin+unpin+munmap`, 'ms', cycle, {
      target: { op: '<=', value: 4000, label: '<= 4 s (model CPU)' },
      note: `${pages} base pages, each pinned twice`,
    });
    return [
      time,
      figure(`${size}: heap+ArrayBuffer bytes a page, faulted and pinned`, 'B/page', perPage, {
        target: { op: '<=', value: 12, label: '<= 12 B a page' },
        note: 'memmap: refcount, pincount, flags',
      }),
    ];
  },
};

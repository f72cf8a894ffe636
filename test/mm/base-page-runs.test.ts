/**
 * Anonymous base pages as runs (page-table extents over runs of memmap pages, bulk pin/unpin/put)
 * against a per-page reference model: one folio object a page from its own allocator, faulted in,
 * pinned, unpinned and unmapped a page at a time in VA order, as the kernel's per-PTE paths go.
 * Both sides start from the same fragmented allocator; after every step each VA page maps the same
 * frame, every frame has the same refcount and pin count, and the free lists are identical.
 */
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { Metrics } from '../../src/core/index.ts';
import {
  MemorySystem,
  MmStruct,
  type PinnedPageArray,
  type PinnedPhyrs,
  pinUserPages,
  pinUserPagesLegacy,
  unpinUserPages,
  unpinUserPagesLegacy,
} from '../../src/mm/index.ts';
import { type Folio, FolioAllocator, MemoryMap } from '../../src/platform/index.ts';
import { propertyRuns } from '../thorough.ts';

const MiB = 1n << 20n;
const BASE = 0x1000_0000n;
const PAGES = 3000;

function allocator(seed: number): FolioAllocator {
  const map = new MemoryMap([
    { kind: 'ram', start: 0x1000n, last: 6n * MiB - 1n, node: 0 },
    { kind: 'ram', start: 6n * MiB, last: 40n * MiB - 1n, node: 1 },
  ]);
  const alloc = new FolioAllocator(map, { maxOrder: 10, metrics: new Metrics() });
  alloc.fragment(seed, { fraction: 0.6, pageblockOrder: 6, maxScatterOrder: 2 });
  return alloc;
}

/** The per-page reference: VA page → its folio; pins as lists of folios. */
class Reference {
  readonly pages = new Map<number, Folio>();
  readonly pins: Folio[][] = [];
  constructor(readonly alloc: FolioAllocator) {}

  fault(from: number, to: number): void {
    for (let p = from; p < to; p++) if (!this.pages.has(p)) this.pages.set(p, this.alloc.allocFolio(0));
  }

  pin(from: number, to: number): void {
    this.fault(from, to);
    const folios: Folio[] = [];
    for (let p = from; p < to; p++) {
      this.alloc.pinFolio(this.pages.get(p)!);
      folios.push(this.pages.get(p)!);
    }
    this.pins.push(folios);
  }

  unpin(index: number): void {
    for (const folio of this.pins.splice(index, 1)[0]!) this.alloc.unpinFolio(folio);
  }

  munmap(from: number, to: number): void {
    for (let p = from; p < to; p++) {
      const folio = this.pages.get(p);
      if (folio === undefined) continue;
      this.pages.delete(p);
      this.alloc.putFolio(folio);
    }
  }
}

type Op =
  | { kind: 'touch' | 'munmap'; page: number; pages: number }
  | { kind: 'pin'; page: number; pages: number; legacy: boolean; sub: number }
  | { kind: 'unpin'; which: number };

const span = { page: fc.nat(PAGES - 1), pages: fc.integer({ min: 1, max: 900 }) };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('touch' as const, 'munmap' as const), ...span }),
  fc.record({ kind: fc.constant('pin' as const), ...span, legacy: fc.boolean(), sub: fc.nat(4095) }),
  fc.record({ kind: fc.constant('unpin' as const), which: fc.nat(20) }),
);

test.prop([fc.array(opArb, { minLength: 1, maxLength: 20 }), fc.nat(1000)], { numRuns: propertyRuns(30) })(
  "runs of base pages give the per-page model's frames, refcounts, pin counts and free lists",
  (ops, seed) => {
    const runAlloc = allocator(seed);
    const reference = new Reference(allocator(seed));
    const mm = new MmStruct(new MemorySystem(runAlloc, { anonOrders: [] }));
    mm.mmap({ kind: 'anon', length: BigInt(PAGES) << 12n, address: BASE });
    const pins: (PinnedPhyrs | PinnedPageArray)[] = [];
    const basePage = Number(BASE >> 12n);
    for (const op of ops) {
      if (op.kind === 'unpin') {
        if (pins.length === 0) continue;
        const i = op.which % pins.length;
        const pin = pins.splice(i, 1)[0]!;
        if ('phyrs' in pin) unpinUserPages(pin, { dirty: true });
        else unpinUserPagesLegacy(pin);
        reference.unpin(i);
        continue;
      }
      const pages = Math.min(op.pages, PAGES - op.page);
      const start = BASE + (BigInt(op.page) << 12n);
      const from = basePage + op.page;
      if (op.kind === 'touch') {
        mm.touch(start, BigInt(pages) << 12n, { write: true });
        reference.fault(from, from + pages);
      } else if (op.kind === 'munmap') {
        mm.munmap(start, BigInt(pages) << 12n);
        mm.mmap({ kind: 'anon', length: BigInt(pages) << 12n, address: start });
        reference.munmap(from, from + pages);
      } else if (op.kind === 'pin') {
        // A pin from a byte inside the first page to the end of the last.
        const sub = BigInt(op.sub);
        const pin = op.legacy ? pinUserPagesLegacy : pinUserPages;
        pins.push(pin(mm, start + sub, (BigInt(pages) << 12n) - sub, { write: true }));
        reference.pin(from, from + pages);
      }
      expectSame(mm, runAlloc, reference, basePage);
    }
    for (const pin of pins) {
      if ('phyrs' in pin) unpinUserPages(pin);
      else unpinUserPagesLegacy(pin);
    }
    // In the same order: the order pages are freed in decides the free lists' order.
    while (reference.pins.length > 0) reference.unpin(0);
    mm.munmap(BASE, BigInt(PAGES) << 12n);
    reference.munmap(basePage, basePage + PAGES);
    expectSame(mm, runAlloc, reference, basePage);
    expect(runAlloc.memmapChunks).toBe(0);
  },
);

function expectSame(mm: MmStruct, runAlloc: FolioAllocator, reference: Reference, basePage: number): void {
  // Frames: VA page → pfn (or unmapped) on both sides.
  const frames = (lookup: (vpn: number) => number) =>
    Int32Array.from({ length: PAGES }, (_, i) => lookup(basePage + i));
  const runFrames = frames((vpn) => {
    const t = mm.translate(BigInt(vpn) << 12n);
    return t === undefined ? -1 : Number(t.phys >> 12n);
  });
  expect(runFrames).toEqual(frames((vpn) => Number(reference.pages.get(vpn)?.pfn ?? -1n)));
  // Every frame either side ever used: refcount and pins; then the free lists, in list order.
  const pfns = new Set<number>();
  for (const f of runAlloc.liveFolios()) if (f.order === 0) pfns.add(Number(f.pfn));
  for (const f of reference.alloc.liveFolios()) if (f.order === 0) pfns.add(Number(f.pfn));
  const states = (alloc: FolioAllocator) =>
    [...pfns]
      .sort((a, b) => a - b)
      .map((p) => {
        const f = alloc.folioAt(BigInt(p));
        return f === undefined ? `${p}:free` : `${p}:${f.order}:${f.refcount}:${f.pincount}`;
      });
  expect(states(runAlloc)).toEqual(states(reference.alloc));
  const free = (alloc: FolioAllocator) => [...alloc.freeBlocks()].map((b) => `${b.node}:${b.order}:${b.pfn}`);
  expect(free(runAlloc)).toEqual(free(reference.alloc));
  expect(runAlloc.allocatedPages).toBe(reference.alloc.allocatedPages);
}

test('a THP fault that falls back a page at a time still maps consecutive frames as one extent', () => {
  const alloc = allocator(7);
  // No free 2 MiB block is left: every PMD-sized fault falls back to base pages.
  alloc.fragment(8, { fraction: 1, pageblockOrder: 9, maxScatterOrder: 0 });
  const metrics = new Metrics();
  const mm = new MmStruct(new MemorySystem(alloc, { anonOrders: [9], metrics }));
  const va = mm.mmap({ kind: 'anon', length: 2n * MiB, address: 0x4000_0000n });
  mm.touch(va, 2n * MiB, { write: true });
  expect(metrics.get('mm.faults')).toBe(512);
  expect(metrics.get('mm.folio_fallbacks')).toBe(512); // one failed THP try a fault, as before
  const extents = mm.mappings(va, 2n * MiB);
  let breaks = 0;
  for (let i = 1; i < extents.length; i++) {
    const a = extents[i - 1]!;
    if (a.pfn + a.pages === extents[i]!.pfn) breaks++;
  }
  expect(breaks).toBe(0); // neighbours in VA that continue in frames were merged
  expect(extents.reduce((n, m) => n + m.pages, 0)).toBe(512);
  expect(extents.length).toBeLessThan(128); // 73 here: the buddy's order-0 lists are scattered
});

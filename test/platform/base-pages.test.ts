/**
 * The bulk base-page paths of the allocator (allocBasePages, put/pin/unpin of a run) against the
 * one-page-at-a-time paths they stand for, on randomly fragmented allocators: same pfns in the same
 * order, same free lists in the same list order, same counts, same per-page references and pins.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/core/index.ts';
import { type Folio, FolioAllocator, GUP_PIN_COUNTING_BIAS, MemoryMap } from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';
import { propertyRuns } from '../thorough.ts';

const MiB = 1n << 20n;

/** Two nodes, an unaligned start and a hole: 30 MiB of RAM in three spans. */
function smallMap(): MemoryMap {
  return new MemoryMap([
    { kind: 'ram', start: 0x3000n, last: 6n * MiB - 1n, node: 0 },
    { kind: 'ram', start: 8n * MiB, last: 20n * MiB - 1n, node: 0 },
    { kind: 'ram', start: 20n * MiB, last: 34n * MiB - 1n, node: 1 },
  ]);
}

interface Prep {
  readonly allocs: readonly { order: number; node: number }[];
  readonly frees: readonly number[];
}

/** A fresh allocator fragmented by allocations and frees (frees put blocks at list heads and tails). */
function prepared(prep: Prep, maxOrder: number): { alloc: FolioAllocator; metrics: Metrics } {
  const metrics = new Metrics();
  const alloc = new FolioAllocator(smallMap(), { maxOrder, metrics });
  const live: Folio[] = [];
  for (const a of prep.allocs) {
    try {
      live.push(alloc.allocFolio(Math.min(a.order, maxOrder), { node: a.node }));
    } catch {
      // ENOMEM: the allocator is full at this order.
    }
  }
  for (const i of prep.frees) {
    if (live.length === 0) break;
    alloc.freeFolio(live.splice(i % live.length, 1)[0]!);
  }
  return { alloc, metrics };
}

function state(alloc: FolioAllocator) {
  return {
    free: [...alloc.freeBlocks()].map((b) => `${b.node}:${b.order}:${b.pfn}`),
    freePages: alloc.freePages,
    allocatedPages: alloc.allocatedPages,
  };
}

/** refcount/pincount of each page of [lo, hi) as folioAt sees it (0/0 when free). */
function pageStates(alloc: FolioAllocator, lo: number, hi: number): Int32Array {
  const out = new Int32Array(2 * (hi - lo));
  for (let p = lo; p < hi; p++) {
    const f = alloc.folioAt(BigInt(p));
    out[2 * (p - lo)] = f?.refcount ?? 0;
    out[2 * (p - lo) + 1] = f?.pincount ?? 0;
  }
  return out;
}

const prepArb: fc.Arbitrary<Prep> = fc.record({
  allocs: fc.array(fc.record({ order: fc.nat(8), node: fc.nat(1) }), { maxLength: 80 }),
  frees: fc.array(fc.nat(1000), { maxLength: 60 }),
});

describe('bulk base pages = one page at a time', () => {
  test.prop(
    [
      prepArb,
      fc.integer({ min: 1, max: 3000 }),
      fc.constantFrom(10, 18),
      fc.option(fc.record({ node: fc.nat(2), thisNode: fc.boolean() }), { nil: undefined }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.array(fc.record({ at: fc.nat(), pages: fc.integer({ min: 1, max: 300 }) }), { maxLength: 4 }),
    ],
    { numRuns: propertyRuns(40) },
  )(
    'allocation, put with pins held, then unpin leave identical pfns, free lists (in list order), counts and page states',
    (prep, count, maxOrder, options, cuts, pins) => {
      const bulk = prepared(prep, maxOrder);
      const single = prepared(prep, maxOrder);
      let runs: { pfn: number; pages: number }[];
      try {
        runs = bulk.alloc.allocBasePages(count, options);
      } catch (e) {
        // All or nothing: ENOMEM only when the nodes allowed hold fewer free pages, nothing taken.
        expect(String(e)).toMatch(/ENOMEM/);
        expect(state(bulk.alloc)).toEqual(state(single.alloc));
        return;
      }
      const pfns: number[] = [];
      for (const r of runs) for (let i = 0; i < r.pages; i++) pfns.push(r.pfn + i);
      const singles = Array.from({ length: count }, () => single.alloc.allocFolio(0, options));
      expect(pfns).toEqual(singles.map((f) => Number(f.pfn)));
      // Runs are maximal: no two neighbours in the list continue each other.
      for (let i = 1; i < runs.length; i++)
        expect(runs[i]!.pfn).not.toBe(runs[i - 1]!.pfn + runs[i - 1]!.pages);
      expect(state(bulk.alloc)).toEqual(state(single.alloc));
      expect(bulk.metrics.get('platform.folio_allocs')).toBe(single.metrics.get('platform.folio_allocs'));

      // Pin some pieces (a page may be pinned twice), then drop every allocation reference in
      // pieces of random size, in a random piece order; then unpin.
      const pinned: { pfn: number; pages: number }[] = [];
      for (const p of pins) {
        const at = p.at % count;
        const piece = pieceAt(pfns, at, p.pages);
        bulk.alloc.pinBasePages(piece.pfn, piece.pages);
        for (let i = 0; i < piece.pages; i++) single.alloc.pinFolio(singles[at + i]!);
        pinned.push(piece);
      }
      const pieces = cutPieces(pfns, cuts);
      for (const piece of pieces) {
        bulk.alloc.putBasePages(piece.pfn, piece.pages);
        const first = pfns.indexOf(piece.pfn);
        for (let i = 0; i < piece.pages; i++) single.alloc.putFolio(singles[first + i]!);
      }
      expect(state(bulk.alloc)).toEqual(state(single.alloc));
      const lo = Math.min(...pfns);
      const hi = Math.max(...pfns) + 1;
      expect(pageStates(bulk.alloc, lo, hi)).toEqual(pageStates(single.alloc, lo, hi));
      for (const piece of pinned) {
        bulk.alloc.unpinBasePages(piece.pfn, piece.pages);
        for (let i = 0; i < piece.pages; i++)
          single.alloc.unpinFolio(single.alloc.folioAt(BigInt(piece.pfn + i))!);
      }
      expect(state(bulk.alloc)).toEqual(state(single.alloc));
      expect(bulk.alloc.allocatedPages).toBe(single.alloc.allocatedPages);
      for (const name of <const>['platform.folio_frees', 'platform.folio_pins', 'platform.folio_unpins']) {
        expect(bulk.metrics.get(name)).toBe(single.metrics.get(name));
      }
      expect(bulk.alloc.memmapChunks).toBe(0); // every memmap chunk went with its last page
    },
  );
});

/** The pages [at, at + pages) of the allocation order, clipped to one run of consecutive pfns. */
function pieceAt(pfns: readonly number[], at: number, pages: number): { pfn: number; pages: number } {
  let n = 1;
  while (n < pages && at + n < pfns.length && pfns[at + n] === pfns[at]! + n) n++;
  return { pfn: pfns[at]!, pages: n };
}

/** Cuts the allocation (in order) into runs of consecutive pfns, cut further at `cuts`, then shuffled by them. */
function cutPieces(pfns: readonly number[], cuts: readonly number[]): { pfn: number; pages: number }[] {
  const cutAt = new Set(cuts.map((c) => c % pfns.length));
  const pieces: { pfn: number; pages: number }[] = [];
  for (let i = 0; i < pfns.length; i++) {
    const last = pieces[pieces.length - 1];
    if (last !== undefined && !cutAt.has(i) && pfns[i] === last.pfn + last.pages) last.pages++;
    else pieces.push({ pfn: pfns[i]!, pages: 1 });
  }
  // A deterministic shuffle driven by the cuts, so frees do not always go in address order.
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = (cuts[i % Math.max(1, cuts.length)] ?? 0) % (i + 1);
    [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
  }
  return pieces;
}

describe('memmap base pages', () => {
  it('hand out one handle per live page, read the memmap, and refuse misuse like folio objects', () => {
    const alloc = new FolioAllocator(smallMap());
    const [run] = alloc.allocBasePages(4);
    const page = alloc.folioAt(BigInt(run!.pfn + 2))!;
    expect(alloc.folioAt(BigInt(run!.pfn + 2))).toBe(page);
    expect([page.order, page.refcount, page.pincount]).toEqual([0, 1, 0]);
    alloc.pinFolio(page);
    expect(page.refcount).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expectErrno(() => alloc.freeFolio(page), 'EBUSY');
    expectErrno(() => alloc.unpinBasePages(run!.pfn, 3), 'EINVAL'); // page 0 has no pin
    alloc.unpinFolio(page);
    alloc.freeFolio(page);
    expect(page.refcount).toBe(0); // a freed page's handle reads as free
    expectErrno(() => alloc.freeFolio(page), 'EINVAL'); // double free
    expectErrno(() => alloc.putBasePages(run!.pfn + 1, 2), 'EINVAL'); // page 2 is free now
    // The put before the bad page went through, as one-by-one puts would have.
    expect(alloc.folioAt(BigInt(run!.pfn + 1))).toBeUndefined();
    expect(alloc.allocatedPages).toBe(2);
    expectErrno(() => alloc.allocBasePages(alloc.freePages + 1), 'ENOMEM');
    expect(alloc.allocatedPages).toBe(2);
  });
});

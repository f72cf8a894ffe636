import { createHash } from 'node:crypto';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, Metrics } from '../../src/core/index.ts';
import {
  builtinPlatform,
  type Folio,
  FolioAllocator,
  type FragmentOptions,
  folioBytes,
  folioMaybeDmaPinned,
  folioPhys,
  GUP_PIN_COUNTING_BIAS,
  MemoryMap,
} from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;

/** Two nodes, RAM with a legacy hole and an unaligned start, like a small 2-socket box. */
function twoNodeMap(): MemoryMap {
  return new MemoryMap([
    { kind: 'reserved', start: 0n, last: 0xfffn },
    { kind: 'ram', start: 0x1000n, last: 0x9fbffn, node: 0 }, // partial last page dropped
    { kind: 'ram', start: 0x10_0000n, last: 0xbfff_ffffn, node: 0 },
    { kind: 'mmio', start: 0xc000_0000n, last: 0xffff_ffffn },
    { kind: 'ram', start: 4n * GiB, last: 6n * GiB - 1n, node: 0 },
    { kind: 'ram', start: 6n * GiB, last: 10n * GiB - 1n, node: 1 },
  ]);
}

/** Checks every structural invariant through the public API. */
function checkInvariants(alloc: FolioAllocator, map: MemoryMap): void {
  const spans: Array<[bigint, bigint, number]> = [];
  for (const f of alloc.liveFolios()) spans.push([f.pfn, f.pfn + (1n << BigInt(f.order)), f.refcount]);
  for (const b of alloc.freeBlocks()) spans.push([b.pfn, b.pfn + (1n << BigInt(b.order)), -1]);
  spans.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < spans.length; i++) expect(spans[i]![0] >= spans[i - 1]![1]).toBe(true); // no overlap
  for (const f of alloc.liveFolios()) {
    expect(f.pfn % (1n << BigInt(f.order))).toBe(0n); // naturally aligned
    const region = map.containing(folioPhys(f), folioPhys(f) + folioBytes(f) - 1n);
    expect(region?.kind).toBe('ram');
    expect(region?.kind === 'ram' && region.node).toBe(f.node);
  }
  for (const b of alloc.freeBlocks()) expect(b.pfn % (1n << BigInt(b.order))).toBe(0n);
  const livePages = [...alloc.liveFolios()].reduce((n, f) => n + 2 ** f.order, 0);
  const freePages = [...alloc.freeBlocks()].reduce((n, b) => n + 2 ** b.order, 0);
  expect(livePages).toBe(alloc.allocatedPages);
  expect(freePages).toBe(alloc.freePages);
  expect(alloc.freePages + alloc.allocatedPages).toBe(alloc.totalPages);
}

describe('FolioAllocator', () => {
  it('seeds the buddy with maximal aligned blocks and counts every whole RAM page', () => {
    const map = twoNodeMap();
    const alloc = new FolioAllocator(map);
    expect(alloc.totalPages).toBe(0x9e + (0xc000_0 - 0x100) + 2 ** 19 + 2 ** 20);
    const info = alloc.buddyInfo();
    expect(info.map((i) => i.node)).toEqual([0, 1]);
    expect(info[1]!.free[18]).toBe(4); // node 1: four 1 GiB blocks
    expect(info[0]!.free.length).toBe(19);
    expect(alloc.formatBuddyInfo()).toMatch(/^Node 0, zone {3}Normal/);
    checkInvariants(alloc, map);
  });

  it('splits the smallest fitting block, keeps the low half, and merges back on free', () => {
    const map = new MemoryMap([{ kind: 'ram', start: 0n, last: (4n << 20n) - 1n, node: 0 }]);
    const alloc = new FolioAllocator(map, { maxOrder: 10 });
    expect(alloc.buddyInfo()[0]!.free[10]).toBe(1);
    const f = alloc.allocFolio(0);
    expect(f.pfn).toBe(0n);
    expect(alloc.buddyInfo()[0]!.free.slice(0, 11)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    const g = alloc.allocFolio(2);
    expect(g.pfn).toBe(4n);
    alloc.freeFolio(f);
    alloc.freeFolio(g);
    expect(alloc.buddyInfo()[0]!.free[10]).toBe(1); // fully coalesced
    expect(alloc.freePages).toBe(1024);
  });

  it('allocates on the preferred node, falls back to others, and honours thisNode', () => {
    const map = twoNodeMap();
    const alloc = new FolioAllocator(map);
    expect(alloc.allocFolio(18, { node: 1 }).node).toBe(1);
    for (let i = 0; i < 3; i++) alloc.allocFolio(18, { node: 1, thisNode: true });
    expectErrno(() => alloc.allocFolio(18, { node: 1, thisNode: true }), 'ENOMEM');
    expect(alloc.allocFolio(18, { node: 1 }).node).toBe(0); // fell back to node 0's 4..5 GiB block
    expectErrno(() => alloc.allocFolio(19), 'EINVAL');
    checkInvariants(alloc, map);
  });

  it('refuses to free a pinned folio (EBUSY), a double free (EINVAL), and models pin accounting', () => {
    const alloc = new FolioAllocator(twoNodeMap());
    const small = alloc.allocFolio(0);
    const thp = alloc.allocFolio(9);
    alloc.pinFolio(small);
    alloc.pinFolio(thp, 3);
    expect(small.refcount).toBe(1 + GUP_PIN_COUNTING_BIAS);
    expect(thp.refcount).toBe(4);
    expect(thp.pincount).toBe(3);
    expect(folioMaybeDmaPinned(small)).toBe(true);
    expect(folioMaybeDmaPinned(thp)).toBe(true);
    expectErrno(() => alloc.freeFolio(small), 'EBUSY');
    expectErrno(() => alloc.freeFolio(thp), 'EBUSY');
    expect(alloc.folioAt(small.pfn)).toBe(small);
    expect(alloc.folioAt(thp.pfn + 511n)).toBe(thp); // a tail page resolves to its folio
    alloc.unpinFolio(small);
    expect(folioMaybeDmaPinned(small)).toBe(false);
    expectErrno(() => alloc.unpinFolio(small), 'EINVAL');
    alloc.freeFolio(small);
    expectErrno(() => alloc.freeFolio(small), 'EINVAL');
    expect(alloc.folioAt(small.pfn)).toBeUndefined();
    // Owner drops its reference while pinned: the folio lives until the last unpin.
    alloc.putFolio(thp);
    expect(alloc.folioAt(thp.pfn)).toBe(thp);
    alloc.unpinFolio(thp, 3);
    expect(alloc.folioAt(thp.pfn)).toBeUndefined();
    expect(alloc.allocatedPages).toBe(0);
  });

  it('reproduces the small-folio false positive of the refcount bias', () => {
    const alloc = new FolioAllocator(twoNodeMap());
    const f = alloc.allocFolio(0);
    for (let i = 0; i < GUP_PIN_COUNTING_BIAS; i++) alloc.getFolio(f);
    expect(folioMaybeDmaPinned(f)).toBe(true); // no pin, yet "maybe pinned"
    expectErrno(() => alloc.freeFolio(f), 'EBUSY');
  });

  it('allocPages prefers THP-sized folios and falls back to smaller ones when fragmented', () => {
    const map = twoNodeMap();
    const clean = new FolioAllocator(map);
    const thps = clean.allocPages(8n << 20n, { preferredOrder: 9 });
    expect(thps.map((f) => f.order)).toEqual([9, 9, 9, 9]);

    // 32 MiB = 16 pageblocks, each poisoned: only order <= 8 pieces remain.
    const small = new MemoryMap([{ kind: 'ram', start: 0x4000_0000n, last: 0x41ff_ffffn, node: 0 }]);
    const alloc = new FolioAllocator(small);
    const result = alloc.fragment(7, { fraction: 1 });
    expect(result.pageblocksSeen).toBe(16);
    expect(result.pageblocksHit).toBe(16);
    expectErrno(() => alloc.allocFolio(9), 'ENOMEM');
    const folios = alloc.allocPages(20n << 20n, { preferredOrder: 9 });
    const orders = new Set(folios.map((f) => f.order));
    expect(orders.has(9)).toBe(false);
    expect(orders.has(8)).toBe(true);
    expect(orders.size).toBeGreaterThan(1); // mixed folio sizes, as GUP will see
    expect(folios.reduce((n, f) => n + folioBytes(f), 0n)).toBe(20n << 20n);
    // Scattered: the folios are not one contiguous run.
    const sorted = folios.map((f) => f.pfn).sort((a, b) => (a < b ? -1 : 1));
    expect(sorted.some((pfn, i) => i > 0 && pfn !== sorted[i - 1]! + 256n)).toBe(true);
    checkInvariants(alloc, small);
  });

  it('allocPages is all or nothing', () => {
    const map = new MemoryMap([{ kind: 'ram', start: 0n, last: (1n << 20n) - 1n }]);
    const alloc = new FolioAllocator(map);
    expectErrno(() => alloc.allocPages(2n << 20n, { preferredOrder: 4 }), 'ENOMEM');
    expect(alloc.allocatedPages).toBe(0);
    expect(alloc.allocPages(1n, {}).length).toBe(1); // rounds up to a page
  });

  it('counts into the metrics object', () => {
    const metrics = new Metrics();
    const alloc = new FolioAllocator(twoNodeMap(), { metrics });
    const f = alloc.allocFolio(3);
    alloc.pinFolio(f);
    alloc.unpinFolio(f);
    alloc.freeFolio(f);
    expect(metrics.get('platform.folio_allocs')).toBe(1);
    expect(metrics.get('platform.folio_frees')).toBe(1);
    expect(metrics.get('platform.folio_pins')).toBe(1);
  });
});

type AllocOp =
  | { op: 'alloc'; order: number; node: number }
  | { op: 'free'; index: number }
  | { op: 'pin'; index: number }
  | { op: 'unpin'; index: number }
  | { op: 'fragment'; seed: number; fraction: number };

const opArb: fc.Arbitrary<AllocOp> = fc.oneof(
  {
    arbitrary: fc.record({ op: fc.constant('alloc' as const), order: fc.nat(18), node: fc.nat(2) }),
    weight: 5,
  },
  { arbitrary: fc.record({ op: fc.constant('free' as const), index: fc.nat(1000) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('pin' as const), index: fc.nat(1000) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('unpin' as const), index: fc.nat(1000) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('fragment' as const),
      seed: fc.nat(),
      fraction: fc.double({ min: 0, max: 0.2, noNaN: true }),
    }),
    weight: 1,
  },
);

/** Runs ops, returning a trace of outcomes so two runs can be compared. */
function run(ops: AllocOp[], map: MemoryMap): { trace: string[]; alloc: FolioAllocator } {
  const alloc = new FolioAllocator(map);
  const live: Folio[] = [];
  const trace: string[] = [];
  for (const step of ops) {
    try {
      if (step.op === 'alloc') {
        const f = alloc.allocFolio(step.order, { node: step.node });
        live.push(f);
        trace.push(`a${f.pfn}/${f.order}`);
      } else if (step.op === 'fragment') {
        const r = alloc.fragment(step.seed, { fraction: step.fraction });
        live.push(...r.folios);
        trace.push(`g${r.folios.map((f) => f.pfn).join(',')}`);
      } else if (live.length > 0) {
        const i = step.index % live.length;
        const f = live[i]!;
        if (step.op === 'free') {
          const wasPinned = f.pincount > 0;
          try {
            alloc.freeFolio(f);
            expect(wasPinned).toBe(false);
            live.splice(i, 1);
            trace.push(`f${f.pfn}`);
          } catch (e) {
            expect(wasPinned && isPhysrError(e, 'EBUSY')).toBe(true);
            expect(alloc.folioAt(f.pfn)).toBe(f); // a pinned folio is never freed
            trace.push('busy');
          }
        } else if (step.op === 'pin') {
          alloc.pinFolio(f);
        } else if (f.pincount > 0) {
          alloc.unpinFolio(f);
        }
      }
    } catch (e) {
      if (!isPhysrError(e, 'ENOMEM')) throw e;
      trace.push('nomem');
    }
  }
  return { trace, alloc };
}

describe('FolioAllocator invariants (fast-check)', () => {
  test.prop([fc.array(opArb, { maxLength: 60 })], { numRuns: 60 })(
    'no overlap, natural alignment, conservation, pinned never freed, same seed same result',
    (ops) => {
      const map = twoNodeMap();
      const first = run(ops, map);
      checkInvariants(first.alloc, map);
      const second = run(ops, map);
      expect(second.trace).toEqual(first.trace);
      expect(second.alloc.buddyInfo()).toEqual(first.alloc.buddyInfo());
      // Freeing everything that is unpinned restores as many pages as were allocated.
      for (const f of [...first.alloc.liveFolios()]) {
        while (f.pincount > 0) first.alloc.unpinFolio(f);
        first.alloc.freeFolio(f);
      }
      expect(first.alloc.freePages).toBe(first.alloc.totalPages);
      checkInvariants(first.alloc, map);
    },
  );

  test.prop([fc.nat(), fc.double({ min: 0, max: 1, noNaN: true })], { numRuns: 15 })(
    'fragment is deterministic for a seed and leaves the invariants intact',
    (seed, fraction) => {
      const map = new MemoryMap([
        { kind: 'ram', start: 0x10_0000n, last: 0x2fff_ffffn, node: 0 },
        { kind: 'ram', start: 0x1_0000_0000n, last: 0x1_1fff_ffffn, node: 1 },
      ]);
      const a = new FolioAllocator(map);
      const b = new FolioAllocator(map);
      const ra = a.fragment(seed, { fraction });
      const rb = b.fragment(seed, { fraction });
      expect(ra.folios.map((f) => [f.pfn, f.order])).toEqual(rb.folios.map((f) => [f.pfn, f.order]));
      expect(a.buddyInfo()).toEqual(b.buddyInfo());
      checkInvariants(a, map);
    },
  );
});

describe('free-list order (mm/page_alloc.c)', () => {
  /** One node of 64 MiB at 1 GiB: order-9 blocks are pageblocks, maxOrder 10 as on x86-64. */
  function small(): FolioAllocator {
    return new FolioAllocator(
      new MemoryMap([{ kind: 'ram', start: GiB, last: GiB + (64n << 20n) - 1n, node: 0 }]),
      {
        maxOrder: 10,
      },
    );
  }

  it('boot memory is freed to the tail: the lowest block is allocated first', () => {
    expect(small().allocFolio(10).pfn).toBe(GiB >> 12n);
  });

  it('expand() puts the split-off halves at the head: consecutive small allocations are contiguous', () => {
    const alloc = small();
    const pfns = Array.from({ length: 64 }, () => alloc.allocFolio(0).pfn);
    for (let i = 1; i < pfns.length; i++) expect(pfns[i]).toBe(pfns[i - 1]! + 1n);
  });

  it('a freed block whose buddies are in use goes to the head: the most recently freed is reused first', () => {
    const alloc = small();
    const folios = Array.from({ length: 8 }, () => alloc.allocFolio(0));
    alloc.freeFolio(folios[1]!); // buddy 0 live, order-1 buddy 2..3 live: head
    alloc.freeFolio(folios[3]!); // buddy 2 live, order-1 buddy 0..1 not free: head, before 1
    expect(alloc.allocFolio(0).pfn).toBe(folios[3]!.pfn);
    expect(alloc.allocFolio(0).pfn).toBe(folios[1]!.pfn);
  });

  it('buddy_merge_likely: a block whose higher buddy is free goes to the tail', () => {
    const alloc = small();
    const folios = Array.from({ length: 8 }, () => alloc.allocFolio(0));
    // Free 6 and 7: they merge into the order-1 block at 6.
    alloc.freeFolio(folios[6]!);
    alloc.freeFolio(folios[7]!);
    // Free 1: buddy 0 is live and so is the order-1 buddy (2..3): no merge likely, to the head.
    alloc.freeFolio(folios[1]!);
    // Free 5 after it: buddy 4 is live, but the order-1 block holding it (4..5) has a free buddy
    // (6..7): a merge is likely, so 5 goes to the tail, behind 1 (a plain head insert would put it first).
    alloc.freeFolio(folios[5]!);
    expect(alloc.allocFolio(0).pfn).toBe(folios[1]!.pfn);
    expect(alloc.allocFolio(0).pfn).toBe(folios[5]!.pfn);
  });
});

describe('fragment keeps its results when its data structures change', () => {
  /** Digest of the folios (in order) and every free list (node, order, heads in list order). */
  function digest(alloc: FolioAllocator, folios: readonly Folio[]): string {
    const h = createHash('sha256');
    h.update(folios.map((f) => `${f.pfn}:${f.order}`).join(','));
    h.update('|');
    h.update([...alloc.freeBlocks()].map((b) => `${b.node}:${b.order}:${b.pfn}`).join(','));
    return h.digest('hex').slice(0, 16);
  }

  function twoNodes(): FolioAllocator {
    return new FolioAllocator(
      new MemoryMap([
        { kind: 'ram', start: 0x10_0000n, last: 0x2fff_ffffn, node: 0 },
        { kind: 'ram', start: 0x1_0000_0000n, last: 0x1_1fff_ffffn, node: 1 },
      ]),
    );
  }

  // Digests captured from the Map-per-list allocator (before the free lists became intrusive):
  // after fragment(), then after freeing every other scattered folio and allocating a few more
  // (merging, buddy_merge_likely and head/tail placement all move blocks between lists).
  const captured: Array<[number, FragmentOptions, number, string, string]> = [
    [1, { fraction: 0.3 }, 192, 'bcb694c4a4204c5c', 'd72f7804b36c3b1e'],
    [2, { fraction: 1 }, 639, '82c1776d3ab3dc5f', '7b071d2d8b2fc39e'],
    [
      3,
      { fraction: 0.2, pageblockOrder: 3, maxScatterOrder: 1 },
      8230,
      '40503d720a766a3c',
      '61032aeeac65cde0',
    ],
    [
      4,
      { fraction: 0.5, pageblockOrder: 9, maxScatterOrder: 2 },
      307,
      '9ca30522f5c3f260',
      '28f07a3b3a496e47',
    ],
  ];
  it.each(captured)(
    'seed %i %o: %i folios, same folios and free lists as before',
    (seed, options, count, after, later) => {
      const alloc = twoNodes();
      const result = alloc.fragment(seed, options);
      expect(result.folios.length).toBe(count);
      expect(digest(alloc, result.folios)).toBe(after);
      result.folios.forEach((f, i) => {
        if (i % 2 === 0) alloc.freeFolio(f);
      });
      const more: Folio[] = [];
      for (const order of [0, 3, 2, 0, 1, 4]) {
        try {
          more.push(alloc.allocFolio(order));
        } catch (e) {
          if (!isPhysrError(e) || e.errno !== 'ENOMEM') throw e;
        }
      }
      expect(digest(alloc, more)).toBe(later);
    },
  );

  it('126 GiB two-socket server, seed 7: same folios and free lists as before', () => {
    const { folios } = builtinPlatform('two-socket-server');
    const result = folios.fragment(7, { fraction: 0.3 });
    expect(result.folios.length).toBe(19293);
    expect(digest(folios, result.folios)).toBe('ad1699fd1a58f1cb');
  });
});

import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { isPhysrError, type PhyrList } from '../../src/core/index.ts';
import {
  type PinnedPhyrs,
  pinnedFolios,
  pinUserPagesWhole,
  unpinUserPages,
  type Vma,
} from '../../src/mm/index.ts';
import type { Folio } from '../../src/platform/index.ts';
import { MiB, machine } from './helpers.ts';

/** The physical address of byte `offset` of the buffer a list describes (reference walk). */
function physAt(list: PhyrList, offset: bigint): bigint {
  let left = offset;
  for (const r of list) {
    if (left < r.length) return r.address + left;
    left -= r.length;
  }
  throw new Error('offset past the list');
}

type Op =
  | { kind: 'pin'; vma: number; page: number; pages: number; write: boolean; sub: number }
  | { kind: 'unpin'; which: number; dirty: boolean }
  | { kind: 'munmap'; vma: number; page: number; pages: number }
  | { kind: 'touch'; vma: number; page: number; pages: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('pin' as const),
    vma: fc.nat(2),
    page: fc.nat(1100),
    pages: fc.integer({ min: 1, max: 700 }),
    write: fc.boolean(),
    sub: fc.nat(4095),
  }),
  fc.record({ kind: fc.constant('unpin' as const), which: fc.nat(20), dirty: fc.boolean() }),
  fc.record({
    kind: fc.constant('munmap' as const),
    vma: fc.nat(2),
    page: fc.nat(1100),
    pages: fc.integer({ min: 1, max: 600 }),
  }),
  fc.record({
    kind: fc.constant('touch' as const),
    vma: fc.nat(2),
    page: fc.nat(1100),
    pages: fc.integer({ min: 1, max: 300 }),
  }),
);

test.prop([fc.array(opArb, { minLength: 1, maxLength: 25 }), fc.nat(1000)], { numRuns: 60 })(
  'random pin/unpin/munmap keeps pin counts exact, never frees a pinned folio, and ranges follow the VAs',
  (ops, seed) => {
    const { mm, system, allocator } = machine({ ramGiB: 1, anonOrders: [9, 2] });
    const scattered = allocator.fragment(seed, { fraction: 0.5, pageblockOrder: 9, maxScatterOrder: 2 });
    system.reserveHugetlb(9, 3);
    const file = system.createFile('shm', 8n * MiB, { needsDirtyTracking: false, maxFolioOrder: 4 });
    // Three VMAs of 4.x MiB: anonymous (odd start, so THP only inside), hugetlb 2M, shared file.
    const bases = [
      mm.mmap({ kind: 'anon', length: 0x46_0000n, address: 0x1000_1000n }),
      mm.mmap({ kind: 'hugetlb', hugeOrder: 9, length: 6n * MiB, address: 0x2000_0000n }),
      mm.mmap({ kind: 'file', file, shared: true, length: 0x46_0000n, address: 0x3000_0000n }),
    ];
    const reference = new Map<Folio, number>();
    const live: PinnedPhyrs[] = [];
    const check = () => {
      for (const folio of allocator.liveFolios()) expect(folio.pincount).toBe(reference.get(folio) ?? 0);
      for (const [folio, pins] of reference) {
        if (pins > 0) expect(allocator.folioAt(folio.pfn)).toBe(folio);
      }
    };
    for (const op of ops) {
      const base = bases[op.kind === 'unpin' ? 0 : op.vma]!;
      if (op.kind === 'pin') {
        const start = base + (BigInt(op.page) << 12n) + BigInt(op.sub);
        const length = (BigInt(op.pages) << 12n) - BigInt(op.sub);
        let pin: PinnedPhyrs;
        try {
          pin = pinUserPagesWhole(mm, start, length, { write: op.write, longterm: true });
        } catch (e) {
          // Only a hole (munmapped or past the VMA) may refuse; nothing stays pinned then.
          expect(isPhysrError(e, 'EFAULT') || isPhysrError(e, 'ENOMEM')).toBe(true);
          check();
          continue;
        }
        expect(pin.phyrs.totalLength).toBe(length);
        for (let off = 0n; off < length; off += 0x1000n - ((start + off) & 0xfffn)) {
          expect(physAt(pin.phyrs, off)).toBe(mm.translate(start + off)!.phys);
        }
        for (const { folio, refs } of pinnedFolios(pin))
          reference.set(folio, (reference.get(folio) ?? 0) + refs);
        live.push(pin);
      } else if (op.kind === 'unpin') {
        if (live.length === 0) continue;
        const [pin] = live.splice(op.which % live.length, 1);
        const folios = pinnedFolios(pin!);
        unpinUserPages(pin!, { dirty: op.dirty });
        for (const { folio, refs } of folios) {
          reference.set(folio, reference.get(folio)! - refs);
          // A folio its last unpin freed has no flags left (free_pages_prepare clears them).
          if (op.dirty && allocator.folioAt(folio.pfn) === folio) expect(system.isDirty(folio)).toBe(true);
        }
      } else if (op.kind === 'munmap') {
        let page = op.page;
        let pages = op.pages;
        if (op.vma === 1) {
          page -= page % 512;
          pages = Math.ceil(pages / 512) * 512;
        }
        mm.munmap(base + (BigInt(page) << 12n), BigInt(pages) << 12n);
      } else {
        const vma: Vma | undefined = mm.findVma(base + (BigInt(op.page) << 12n));
        if (vma === undefined) continue;
        const start = base + (BigInt(op.page) << 12n);
        const end = start + (BigInt(op.pages) << 12n) < vma.end ? start + (BigInt(op.pages) << 12n) : vma.end;
        mm.touch(start, end - start, { write: true });
      }
      check();
    }
    for (const pin of live) unpinUserPages(pin);
    mm.destroy();
    system.dropPageCache(file);
    // Nothing leaks: only the hugetlb pool and the fragmenting allocations stay allocated.
    for (const folio of allocator.liveFolios()) expect(folio.pincount).toBe(0);
    const pool = system.hugetlbPool(9);
    expect(pool.free).toBe(pool.total);
    const scatteredPages = scattered.folios.reduce((n, f) => n + 2 ** f.order, 0);
    expect(allocator.allocatedPages).toBe(pool.total * 512 + scatteredPages);
  },
);

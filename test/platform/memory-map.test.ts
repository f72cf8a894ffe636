import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, U64_MAX } from '../../src/core/index.ts';
import {
  addrToPfn,
  MemoryMap,
  type MemoryRegion,
  type MemoryRegionKind,
  pfnToAddr,
  pfnUp,
} from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';

describe('MemoryMap', () => {
  const map = (): MemoryMap =>
    new MemoryMap([
      { kind: 'reserved', start: 0n, last: 0xfffn },
      { kind: 'ram', start: 0x1000n, last: 0x9fbffn, node: 0 },
      { kind: 'ram', start: 0x1_0000_0000n, last: 0x8_3fff_ffffn, node: 1 },
      { kind: 'mmio', start: 0x3800_0000_0000n, last: 0x3807_ffff_ffffn, bdf: '0000:17:00.0', barIndex: 0 },
      { kind: 'pmem', start: 0x10_0000_0000n, last: 0x10_ffff_ffffn, structPages: true },
      { kind: 'mmio', start: 0xffff_ffff_ffff_f000n, last: U64_MAX, p2pdmaPages: true },
    ]);

  it('finds the region holding an address and reports holes', () => {
    const m = map();
    expect(m.lookup(0x1000n)?.kind).toBe('ram');
    expect(m.lookup(0x9fbffn)?.kind).toBe('ram');
    expect(m.lookup(0x9fc00n)).toBeUndefined();
    expect(m.lookup(0x3800_1234_5678n)?.name).toBe('0000:17:00.0');
    expect(m.lookup(U64_MAX)?.kind).toBe('mmio');
    expect(m.regions().map((r) => r.start)).toEqual(
      [...m.regions().map((r) => r.start)].sort((a, b) => (a < b ? -1 : 1)),
    );
  });

  it('refuses overlap with EEXIST naming both regions and malformed regions with EINVAL', () => {
    const m = map();
    expectErrno(() => m.add({ kind: 'ram', start: 0x9f000n, last: 0xa0fffn }), 'EEXIST');
    expectErrno(() => m.add({ kind: 'reserved', start: 0x0n, last: 0x0n }), 'EEXIST');
    expectErrno(() => m.add({ kind: 'reserved', start: 0x2000_0000n, last: 0x1000_0000n }), 'EINVAL');
    expectErrno(() => m.add({ kind: 'reserved', start: 0n, last: U64_MAX + 1n }), 'EINVAL');
    try {
      m.add({ kind: 'ram', start: 0x8_0000_0000n, last: 0x9_0000_0000n });
    } catch (e) {
      expect(String(e)).toContain('0x100000000-0x83fffffff');
    }
    expect(m.size).toBe(6);
  });

  it('sums RAM, filters by kind and knows which addresses have struct pages', () => {
    const m = map();
    expect(m.totalRam()).toBe(0x9fbffn - 0x1000n + 1n + 0x7_4000_0000n);
    expect(m.byKind('mmio').map((r) => r.bdf)).toEqual(['0000:17:00.0', undefined]);
    expect(m.hasStructPage(0x2000n)).toBe(true);
    expect(m.hasStructPage(0x500n)).toBe(false); // reserved
    expect(m.hasStructPage(0x9fc00n)).toBe(false); // hole
    expect(m.hasStructPage(0x10_0000_0000n)).toBe(true); // ZONE_DEVICE pmem
    expect(m.hasStructPage(0x3800_0000_0000n)).toBe(false); // plain BAR
    expect(m.hasStructPage(U64_MAX)).toBe(true); // P2PDMA BAR
  });

  it('removes by start and lists overlapping regions', () => {
    const m = map();
    expect(m.overlapping(0x800n, 0x1_0000_0000n).map((r) => r.kind)).toEqual(['reserved', 'ram', 'ram']);
    expect(m.remove(0x1000n).kind).toBe('ram');
    expectErrno(() => m.remove(0x1001n), 'ENOENT');
    expect(m.lookup(0x2000n)).toBeUndefined();
    const ram = m.containing(0x1_0000_0000n, 0x1_0000_1fffn);
    expect(ram?.kind === 'ram' && ram.node).toBe(1);
    expect(m.containing(0xf00n, 0x1_0000_0000n)).toBeUndefined();
  });

  it('converts between addresses and PFNs without losing high bits', () => {
    expect(addrToPfn(0xffff_ffff_ffff_f123n)).toBe(0xf_ffff_ffff_ffffn);
    expect(pfnToAddr(0xf_ffff_ffff_ffffn)).toBe(0xffff_ffff_ffff_f000n);
    expect(pfnUp(0x1001n)).toBe(2n);
    expect(pfnUp(0x1000n)).toBe(1n);
  });
});

/** Random disjoint-ish regions: the reference model is a plain array scanned linearly. */
const regionArb = fc.record({
  start: fc.oneof(fc.bigInt({ min: 0n, max: 1n << 20n }), fc.bigInt({ min: 0n, max: U64_MAX })),
  length: fc.oneof(fc.bigInt({ min: 1n, max: 1n << 16n }), fc.bigInt({ min: 1n, max: 1n << 62n })),
  kind: fc.constantFrom<MemoryRegionKind>('ram', 'pmem', 'mmio', 'reserved'),
});

describe('MemoryMap against a linear-scan reference', () => {
  test.prop([
    fc.array(regionArb, { maxLength: 40 }),
    fc.array(fc.bigInt({ min: 0n, max: U64_MAX }), { maxLength: 40 }),
  ])('lookup, add and overlap refusal agree with a linear scan', (inputs, probes) => {
    const m = new MemoryMap();
    const reference: MemoryRegion[] = [];
    for (const input of inputs) {
      const last = input.start + input.length - 1n > U64_MAX ? U64_MAX : input.start + input.length - 1n;
      const clash = reference.some((r) => r.start <= last && input.start <= r.last);
      try {
        const added = m.add({ kind: input.kind, start: input.start, last });
        expect(clash).toBe(false);
        reference.push(added);
      } catch (e) {
        expect(clash).toBe(true);
        expect(isPhysrError(e, 'EEXIST')).toBe(true);
      }
    }
    const extra = reference.flatMap((r) => [r.start, r.last, r.start - 1n, r.last + 1n]);
    for (const addr of [...probes, ...extra]) {
      if (addr < 0n || addr > U64_MAX) continue;
      const expected = reference.find((r) => r.start <= addr && addr <= r.last);
      expect(m.lookup(addr)).toBe(expected);
    }
  });
});

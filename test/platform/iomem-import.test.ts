import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, type PhysrError } from '../../src/core/index.ts';
import {
  FolioAllocator,
  flattenIomem,
  formatIomem,
  IOMEM_HIDDEN_NOTE,
  parseIomem,
  readIomem,
} from '../../src/platform/index.ts';

const fixtures = join(import.meta.dirname, 'fixtures');
const fixture = (name: string): string => readFileSync(join(fixtures, name), 'utf8');

function parseError(text: string, file = 'iomem.txt'): PhysrError {
  try {
    parseIomem(text, file);
  } catch (e) {
    if (isPhysrError(e)) return e;
    throw e;
  }
  throw new Error('expected a PhysrError');
}

describe('parseIomem on captures', () => {
  it('reads a 2-socket server: RAM, pmem, firmware ranges, BARs behind a PCIe switch', () => {
    const result = parseIomem(fixture('iomem-2socket-server.txt'), 'iomem-2socket-server.txt');
    expect(result.addressesHidden).toBe(false);
    const { map } = result;
    expect(map.totalRam()).toBe(0x9f000n + 0x5c3ff000n + 0x1000n + 0x1f80000000n + 0x2000000000n);
    expect(map.lookup(0x3c20_0000n)?.kind).toBe('ram'); // Kernel code is still RAM
    expect(map.lookup(0x6e3f_f000n)?.name).toBe('ACPI Tables');
    expect(map.lookup(0x40_8000_0000n)?.kind).toBe('pmem');
    expect(map.hasStructPage(0x40_8000_0000n)).toBe(false);
    const gpu = map.lookup(0x2010_0000_0000n);
    expect(gpu?.kind === 'mmio' && gpu.bdf).toBe('0000:1a:00.0');
    expect(gpu?.kind === 'mmio' && gpu.barIndex).toBeUndefined(); // not in /proc/iomem: unknown
    expect(map.lookup(0x2030_0200_0000n)?.name).toBe('0000:1b:00.1');
    // Unclaimed window space is a hole, not a region.
    expect(map.lookup(0x2000_0000_0000n)).toBeUndefined();
    expect(map.lookup(0xc580_0000n)).toBeUndefined();
    expect(result.bars.filter((b) => b.bdf === '0000:1a:00.0').length).toBe(3);
    expect(result.bars.find((b) => b.bdf === '0000:1b:00.0')?.claimedBy).toEqual(['mlx5_core']);
    const hosts = result.pciWindows.filter((w) => w.hostBridge).map((w) => w.bus);
    expect(hosts).toEqual([0x00, 0x17, 0xae, 0x00, 0x17]);
    expect(result.pciWindows.find((w) => w.bus === 0x1a)?.hostBridge).toBe(false);
    expect(result.notes.join('\n')).toMatch(/NUMA node/);
  });

  it('reads a laptop and an ARM server with 64-bit windows in two PCI segments', () => {
    const laptop = parseIomem(fixture('iomem-laptop.txt'), 'iomem-laptop.txt');
    expect(laptop.map.byKind('mmio').map((r) => r.name)).toEqual([
      '0000:01:00.0',
      '0000:00:02.0',
      '0000:00:02.0',
      '0000:00:1f.3',
    ]);
    expect(laptop.map.lookup(0x4_c000_0000n)?.name).toBe('RAM buffer');
    const arm = parseIomem(fixture('iomem-arm-server.txt'), 'iomem-arm-server.txt');
    expect(arm.map.lookup(0x4000_0000_0000n)?.name).toBe('000d:01:00.0');
    expect(arm.pciWindows.filter((w) => w.hostBridge).map((w) => w.segment)).toEqual([0, 0, 0x0d]);
    expect(arm.map.lookup(0xfffc_0000n)?.kind).toBe('reserved');
    expect(arm.map.lookup(0x9214_0000n)?.kind).toBe('ram'); // memblock-reserved RAM keeps its pages
    const lines = fixture('iomem-arm-server.txt')
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(flattenIomem(arm.tree).map((e) => e.line)).toEqual(lines.map((_, i) => i + 1));
  });

  it('builds a folio allocator over an imported map', () => {
    const { map } = parseIomem(fixture('iomem-laptop.txt'), 'iomem-laptop.txt');
    const alloc = new FolioAllocator(map);
    expect(alloc.totalPages * 4096).toBe(Number(map.totalRam())); // every RAM entry is page aligned here
    expect(alloc.allocFolio(18).pfn % 262144n).toBe(0n);
  });

  it("reads this machine's own /proc/iomem", () => {
    const live = readIomem('/proc/iomem');
    if (live.addressesHidden) {
      expect(live.notes).toContain(IOMEM_HIDDEN_NOTE);
      expect(live.map.size).toBe(0);
    } else {
      expect(live.map.totalRam()).toBeGreaterThan(0n);
    }
    const vm = parseIomem(fixture('iomem-ec2-vm.txt'), 'iomem-ec2-vm.txt');
    expect(vm.bars.map((b) => b.claimedBy[0])).toContain('virtio-pci-modern');
  });

  it('reports all-zero addresses as hidden, not as data', () => {
    const result = parseIomem(fixture('iomem-nonroot.txt'), 'iomem-nonroot.txt');
    expect(result.addressesHidden).toBe(true);
    expect(result.notes).toEqual([IOMEM_HIDDEN_NOTE]);
    expect(result.map.size).toBe(0);
    expect(result.tree.length).toBeGreaterThan(5); // names and nesting still read
  });
});

describe('parseIomem refusals name file, line and what was expected', () => {
  it('a truncated line', () => {
    const e = parseError('00000000-00000fff : Reserved\n00001000-0009');
    expect(e.errno).toBe('EINVAL');
    expect(e.location).toMatchObject({ file: 'iomem.txt', line: 2 });
    expect(e.reason).toMatch(/expected "START-END : NAME"/);
  });

  it('a line without the name separator', () => {
    const e = parseError('00000000-00000fff Reserved\n');
    expect(e.location?.line).toBe(1);
    expect(e.reason).toMatch(/START-END : NAME/);
  });

  it('odd indentation and a jump of two levels', () => {
    expect(parseError('00000000-0000ffff : a\n   00000000-00000fff : b\n').reason).toMatch(/multiple of 2/);
    const e = parseError('00000000-0000ffff : a\n    00000000-00000fff : b\n');
    expect(e.location?.line).toBe(2);
    expect(e.reason).toMatch(/expected at most level 1/);
  });

  it('a child outside its parent, overlapping siblings, reversed ranges, oversize numbers', () => {
    const outside = parseError('00001000-00001fff : a\n  00000000-00001fff : b\n');
    expect(outside.reason).toMatch(/not inside its parent.*line 1/);
    const overlap = parseError('00000000-00001fff : a\n00001000-00002fff : b\n');
    expect(overlap.location?.line).toBe(2);
    expect(overlap.reason).toMatch(/overlaps/);
    expect(parseError('00002000-00001fff : a\n').reason).toMatch(/ends before it starts/);
    const big = parseError('00000000-1ffffffffffffffff : a\n');
    expect(big.location).toMatchObject({ line: 1, field: 'end' });
  });

  it('an empty file', () => {
    expect(parseError('\n\n').reason).toMatch(/no entries/);
  });

  it('a missing file is ENOENT naming it', () => {
    try {
      readIomem('/nonexistent/iomem');
      throw new Error('expected ENOENT');
    } catch (e) {
      expect(isPhysrError(e, 'ENOENT')).toBe(true);
      if (isPhysrError(e)) expect(e.location?.file).toBe('/nonexistent/iomem');
    }
  });

  it('addresses up to 2^64-1 are kept exactly', () => {
    const r = parseIomem('fffffffffffff000-ffffffffffffffff : 0000:01:00.0\n');
    expect(r.map.lookup(0xffff_ffff_ffff_ffffn)?.kind).toBe('mmio');
  });
});

/** A random well-formed resource tree inside [start, last]: children nest and do not overlap. */
function treeArb(depth: number): fc.Arbitrary<Array<{ name: string; cuts: bigint[]; kids: number }>> {
  return fc.array(
    fc.record({
      name: fc.constantFrom(
        'System RAM',
        'Reserved',
        'PCI Bus 0000:00',
        '0000:01:00.0',
        'Kernel code',
        'nvme',
      ),
      cuts: fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 2, maxLength: 2 }),
      kids: fc.nat(depth),
    }),
    { maxLength: 6 },
  );
}

function buildText(
  spec: Array<{ name: string; cuts: bigint[]; kids: number }>,
  start: bigint,
  last: bigint,
  depth: number,
): string {
  // Split [start, last] into disjoint ascending pieces, one per spec item.
  const points = spec.flatMap((s) => s.cuts.map((c) => start + (c % (last - start + 1n))));
  points.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let text = '';
  let floor = start;
  for (let i = 0; i + 1 < points.length; i += 2) {
    let lo = points[i]!;
    if (lo < floor) lo = floor;
    const hi = points[i + 1]!;
    if (lo > hi) continue;
    const item = spec[i >> 1]!;
    text += `${'  '.repeat(depth)}${lo.toString(16).padStart(8, '0')}-${hi.toString(16).padStart(8, '0')} : ${item.name}\n`;
    if (item.kids > 0 && depth < 3) text += buildText(spec.slice(0, item.kids), lo, hi, depth + 1);
    if (hi === (1n << 64n) - 1n) break;
    floor = hi + 1n;
  }
  return text;
}

describe('parseIomem round trip (fast-check)', () => {
  test.prop([treeArb(3)], { numRuns: 200 })('formatIomem(parseIomem(text)) gives back the text', (spec) => {
    const text = buildText(spec, 0x1000n, (1n << 64n) - 1n, 0);
    fc.pre(text.length > 0);
    const parsed = parseIomem(text, 'gen.txt');
    expect(formatIomem(parsed.tree)).toBe(text);
    // Every derived region lies inside a top-level entry; every BAR entry became an mmio region.
    for (const region of parsed.map.regions()) {
      expect(parsed.tree.some((e) => e.start <= region.start && region.last <= e.last)).toBe(true);
    }
    for (const bar of parsed.bars) expect(parsed.map.lookup(bar.start)?.kind).toBe('mmio');
  });
});

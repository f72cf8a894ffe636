import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { DmaRangeList, isPhysrError } from '../../src/core/index.ts';
import {
  commandPointer,
  type DescriptorAllocator,
  type DescriptorBuffer,
  DmaAccessError,
  NVME_SGL_FMT_DATA_DESC,
  NVME_SGL_FMT_LAST_SEG_DESC,
  NVME_SGL_FMT_SEG_DESC,
  NvmeController,
  prpIncompatibility,
  setupDataPointer,
  setupPrps,
  setupSgls,
} from '../../src/devices/index.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/index.ts';
import { twoSocketServer } from '../../src/platform/index.ts';
import { makeFabric, type TestFabric } from './fabric-fixture.ts';

const NVME = '0000:06:00.0';
const DESC_BASE = 0x4000_0000n;

/** dma_pool stand-in: size-aligned blocks from a RAM area; mapped 1:1 in the device's domain if any. */
function bumpAllocator(
  f: TestFabric,
  device: string,
  base = DESC_BASE,
): DescriptorAllocator & { blocks: DescriptorBuffer[] } {
  let next = base;
  const blocks: DescriptorBuffer[] = [];
  return {
    blocks,
    alloc(size: number): DescriptorBuffer {
      const s = BigInt(size);
      const at = ((next + s - 1n) / s) * s;
      next = at + s;
      const domain = f.domains.get(device);
      if (domain !== undefined) {
        const page = (at / 4096n) * 4096n;
        if (domain.iovaToPhys(page) === 0n) domain.map(page, page, 4096n, IOMMU_READ | IOMMU_WRITE);
      }
      const block = { cpuAddress: at, dmaAddress: at, size };
      blocks.push(block);
      return block;
    },
  };
}

function list(ranges: [bigint, bigint][]): DmaRangeList {
  return DmaRangeList.fromRanges(ranges);
}

function direct() {
  return makeFabric(twoSocketServer(), { translated: () => false });
}

describe('PRP setup (nvme_pci_setup_prps)', () => {
  it('one page with an offset: PRP1 only', () => {
    const f = direct();
    const p = setupPrps(list([[0x20_0200n, 0x800n]]), bumpAllocator(f, NVME), f.bytes);
    expect([p.prp1, p.prp2, p.lists.length, p.dataEntries, p.descriptorBytes]).toEqual([
      0x20_0200n,
      0n,
      0,
      1,
      0,
    ]);
  });

  it('two pages: PRP2 is the second data page, no list', () => {
    const f = direct();
    const p = setupPrps(list([[0x20_0200n, 0x1800n]]), bumpAllocator(f, NVME), f.bytes);
    expect([p.prp1, p.prp2, p.lists.length, p.dataEntries]).toEqual([0x20_0200n, 0x20_1000n, 0, 2]);
  });

  it('three ranges: a 256-byte PRP list of page addresses, written to memory', () => {
    const f = direct();
    const alloc = bumpAllocator(f, NVME);
    const p = setupPrps(
      list([
        [0x20_0800n, 0x800n],
        [0x30_0000n, 0x2000n],
        [0x50_0000n, 0x100n],
      ]),
      alloc,
      f.bytes,
    );
    expect(p.prp1).toBe(0x20_0800n);
    expect(p.prp2).toBe(DESC_BASE);
    expect(p.lists.map((l) => l.entries)).toEqual([[0x30_0000n, 0x30_1000n, 0x50_0000n]]);
    expect(p.descriptorBytes).toBe(256);
    const raw = new DataView(f.bytes.read(DESC_BASE, 24).buffer);
    expect([0, 8, 16].map((o) => raw.getBigUint64(o, true))).toEqual([0x30_0000n, 0x30_1000n, 0x50_0000n]);
  });

  it('600 pages: a full list page gives its last slot to the chain pointer', () => {
    const f = direct();
    const p = setupPrps(list([[0x100_0000n, 600n * 4096n]]), bumpAllocator(f, NVME), f.bytes);
    expect(p.dataEntries).toBe(600);
    expect(p.lists).toHaveLength(2);
    const [a, b] = p.lists;
    expect(a!.entries).toHaveLength(512);
    expect(a!.entries[510]).toBe(0x100_0000n + 511n * 4096n);
    expect(a!.entries[511]).toBe(b!.buffer.dmaAddress);
    expect(b!.entries[0]).toBe(0x100_0000n + 512n * 4096n);
    expect(b!.entries).toHaveLength(88);
    expect(p.descriptorBytes).toBe(8192);
  });

  it('refuses lists PRPs cannot express, and the driver falls back to SGLs', () => {
    const f = direct();
    const endsMid = list([
      [0x20_0000n, 0x800n],
      [0x30_0000n, 0x1000n],
    ]);
    const startsMid = list([
      [0x20_0000n, 0x1000n],
      [0x30_0200n, 0x100n],
    ]);
    expect(prpIncompatibility(endsMid)).toMatch(/range 0 ends at 0x200800/);
    expect(prpIncompatibility(startsMid)).toMatch(/range 1 starts at 0x300200/);
    for (const l of [endsMid, startsMid]) {
      try {
        setupPrps(l, bumpAllocator(f, NVME), f.bytes);
        expect.unreachable();
      } catch (e) {
        expect(isPhysrError(e, 'EINVAL')).toBe(true);
      }
      expect(setupDataPointer(l, bumpAllocator(f, NVME), f.bytes).kind).toBe('sgl');
      expect(() => setupDataPointer(l, bumpAllocator(f, NVME), f.bytes, { sglSupported: false })).toThrow(
        /no SGL support/,
      );
    }
    // A payload shorter than the list only looks at the ranges it uses.
    expect(prpIncompatibility(endsMid, { length: 0x800 })).toBeUndefined();
  });
});

describe('SGL setup (nvme_pci_setup_sgls)', () => {
  it('one range: a data block descriptor in the command, no memory', () => {
    const f = direct();
    const s = setupSgls(list([[0x20_0123n, 0x5000n]]), bumpAllocator(f, NVME), f.bytes);
    expect(s.sgl1).toEqual({ address: 0x20_0123n, length: 0x5000, format: NVME_SGL_FMT_DATA_DESC });
    expect([s.segments.length, s.descriptorBytes]).toEqual([0, 0]);
  });

  it('three ranges: one Last Segment of three data descriptors in a small pool block', () => {
    const f = direct();
    const s = setupSgls(
      list([
        [0x20_0123n, 0x100n],
        [0x30_0000n, 0x10n],
        [0x40_0007n, 0x3000n],
      ]),
      bumpAllocator(f, NVME),
      f.bytes,
    );
    expect(s.sgl1).toEqual({ address: DESC_BASE, length: 48, format: NVME_SGL_FMT_LAST_SEG_DESC });
    expect(s.descriptorBytes).toBe(256);
    const raw = f.bytes.read(DESC_BASE, 48);
    const view = new DataView(raw.buffer);
    expect(view.getBigUint64(32, true)).toBe(0x40_0007n);
    expect(view.getUint32(40, true)).toBe(0x3000);
    expect(raw[47]).toBe(0);
  });

  it('300 ranges: a Segment of 255 data descriptors plus a link to a Last Segment of 45', () => {
    const f = direct();
    const ranges: [bigint, bigint][] = Array.from({ length: 300 }, (_, i) => [
      0x100_0000n + BigInt(i) * 0x2000n,
      0x200n,
    ]);
    const s = setupSgls(list(ranges), bumpAllocator(f, NVME), f.bytes);
    expect(s.sgl1).toMatchObject({ length: 4096, format: NVME_SGL_FMT_SEG_DESC });
    expect(s.segments.map((g) => g.descriptors.length)).toEqual([256, 45]);
    expect(s.segments[0]!.descriptors[255]).toEqual({
      address: s.segments[1]!.buffer.dmaAddress,
      length: 45 * 16,
      format: NVME_SGL_FMT_LAST_SEG_DESC,
    });
    expect(s.descriptorBytes).toBe(8192);
    expect(s.dataDescriptors).toBe(300);
  });
});

function coalesce(ranges: readonly { dmaAddress: bigint; length: number }[]): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const r of ranges) {
    const last = out.at(-1);
    if (last !== undefined && last[0] + last[1] === r.dmaAddress) last[1] += BigInt(r.length);
    else out.push([r.dmaAddress, BigInt(r.length)]);
  }
  return out;
}

function listTransfers(l: DmaRangeList) {
  return l.toArray().map((r) => ({ dmaAddress: r.address as bigint, length: Number(r.length) }));
}

/** PRP-expressible lists: an offset only in the first range, page-ended ranges before the last. */
const prpList = fc
  .record({
    offset: fc.integer({ min: 0, max: 4095 }),
    firstPages: fc.integer({ min: 1, max: 4 }),
    middle: fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 30 }),
    lastLen: fc.integer({ min: 1, max: 3 * 4096 }),
    single: fc.boolean(),
  })
  .map(({ offset, firstPages, middle, lastLen, single }) => {
    const ranges: [bigint, bigint][] = [];
    let page = 0x100n;
    const firstLen = single ? BigInt(lastLen) : BigInt(firstPages * 4096 - offset);
    ranges.push([page * 4096n + BigInt(offset), firstLen]);
    page += 8n;
    if (!single) {
      for (const pages of middle) {
        ranges.push([page * 4096n, BigInt(pages) * 4096n]);
        page += BigInt(pages) + 3n;
      }
      ranges.push([page * 4096n, BigInt(lastLen)]);
    }
    return list(ranges);
  });

const anyList = fc
  .array(fc.record({ gap: fc.integer({ min: 0, max: 5000 }), len: fc.integer({ min: 1, max: 9000 }) }), {
    minLength: 1,
    maxLength: 600,
  })
  .map((parts) => {
    let at = 0x100_0000n;
    return list(
      parts.map(({ gap, len }) => {
        at += BigInt(gap);
        const r: [bigint, bigint] = [at, BigInt(len)];
        at += BigInt(len);
        return r;
      }),
    );
  });

describe('the controller walks exactly the list, fetching descriptors by DMA', () => {
  test.prop([prpList], { numRuns: 60 })('PRP walk covers the list bytes in order', (l) => {
    const f = direct();
    const nvme = new NvmeController(f, NVME);
    const p = setupPrps(l, bumpAllocator(f, NVME), f.bytes);
    const walked = nvme.walk(commandPointer(p), Number(l.totalLength));
    expect(coalesce(walked.transfers)).toEqual(coalesce(listTransfers(l)));
    expect(walked.descriptorBytesRead).toBe(p.lists.reduce((n, x) => n + x.entries.length * 8, 0));
  });

  test.prop([anyList], { numRuns: 60 })('SGL walk covers the list bytes in order', (l) => {
    const f = direct();
    const nvme = new NvmeController(f, NVME);
    const s = setupSgls(l, bumpAllocator(f, NVME), f.bytes);
    const walked = nvme.walk(commandPointer(s), Number(l.totalLength));
    expect(walked.transfers).toEqual(listTransfers(l));
    expect(walked.descriptorBytesRead).toBe(s.segments.reduce((n, g) => n + g.descriptors.length * 16, 0));
  });
});

describe('NVMe commands move real bytes through the IOMMU', () => {
  function setup() {
    const f = makeFabric(twoSocketServer());
    const domain = f.domains.get(NVME)!;
    // Host buffer: three physical pieces behind one contiguous IOVA range.
    domain.map(0x10_0000n, 0x20_0000n, 0x1000n, IOMMU_READ | IOMMU_WRITE);
    domain.map(0x10_1000n, 0x35_0000n, 0x2000n, IOMMU_READ | IOMMU_WRITE);
    domain.map(0x10_3000n, 0x22_0000n, 0x1000n, IOMMU_READ | IOMMU_WRITE);
    return { f, nvme: new NvmeController(f, NVME), domain };
  }

  it('write then read back through PRPs and through SGLs', () => {
    const { f, nvme } = setup();
    const data = Uint8Array.from({ length: 0x3000 }, (_, i) => (i * 7 + 3) & 0xff);
    f.bytes.write(0x20_0000n, data.subarray(0, 0x1000));
    f.bytes.write(0x35_0000n, data.subarray(0x1000, 0x3000));
    const src = list([
      [0x10_0000n, 0x1000n],
      [0x10_1000n, 0x2000n],
    ]);
    const prp = setupPrps(src, bumpAllocator(f, NVME), f.bytes);
    nvme.write(8n, 0x3000 / 512, commandPointer(prp));
    expect(nvme.media.read(8n * 512n, 0x3000)).toEqual(data);
    expect(f.metrics.get('devices.nvme_descriptor_bytes_read')).toBe(16); // PRP1 + a list of two entries

    // Read it back into an odd-shaped buffer only SGLs can describe.
    const dst = list([
      [0x10_3f00n, 0x80n],
      [0x10_1000n, 0x2f00n],
      [0x10_3f80n, 0x80n],
    ]);
    const sgl = setupDataPointer(dst, bumpAllocator(f, NVME, DESC_BASE + 0x10_0000n), f.bytes);
    expect(sgl.kind).toBe('sgl');
    nvme.read(8n, 0x3000 / 512, commandPointer(sgl));
    expect(f.bytes.read(0x22_0f00n, 0x80)).toEqual(data.subarray(0, 0x80));
    expect(f.bytes.read(0x35_0000n, 0x2000)).toEqual(data.subarray(0x80, 0x2080));
    expect(f.bytes.read(0x22_0000n, 0xf00)).toEqual(data.subarray(0x2080, 0x2f80));
    expect(f.bytes.read(0x22_0f80n, 0x80)).toEqual(data.subarray(0x2f80, 0x3000));
    expect(f.metrics.get('devices.nvme_descriptor_bytes_read')).toBe(16 + 48);
  });

  it('a PRP list the device cannot reach faults: list pages are fetched by DMA', () => {
    const { f, nvme, domain } = setup();
    const alloc = bumpAllocator(f, NVME);
    const prp = setupPrps(list([[0x10_0000n, 0x3000n]]), alloc, f.bytes);
    expect(prp.lists).toHaveLength(1);
    domain.unmap(alloc.blocks[0]!.dmaAddress, 0x1000n);
    expect(() => nvme.write(0n, 0x3000 / 512, commandPointer(prp))).toThrow(DmaAccessError);
    expect(f.iommus.get('pci0000:00')!.faults.at(-1)!.iova).toBe(alloc.blocks[0]!.dmaAddress);
  });
});

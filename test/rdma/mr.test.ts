import { describe, expect, it } from 'vitest';
import { isPhysrError, PhyrList } from '../../src/core/index.ts';
import { PhyrExporter } from '../../src/dmabuf/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGet,
  ibUmemDmabufGetPinned,
  ibUmemGet,
  ibUmemGetLegacy,
  RdmaContext,
} from '../../src/rdma/index.ts';
import { VfioPciDevice } from '../../src/vfio/index.ts';
import { expectErrno } from '../errno.ts';
import { GPU_BAR1, GPU_BDF, rdmaMachine } from './fixture.ts';

const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;
const MiB = 1n << 20n;
const GiB = 1n << 30n;

function pattern(n: number, seed = 7): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
}

describe('registration from user memory', () => {
  it('scattered 4K-backed memory: 4K pages, one list entry per page', () => {
    const { mm, allocator, device } = rdmaMachine({ anonOrders: [] });
    // Take one page of every 8K, so VA-adjacent pages are mostly not physically adjacent.
    allocator.fragment(1, { fraction: 1, pageblockOrder: 1, maxScatterOrder: 0 });
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, MiB, RW), RW);
    expect(mr.pageSize).toBe(0x1000n);
    expect(mr.numBlocks).toBe(256);
    expect(ctx.pageList(mr)!.length).toBe(256);
    expect(mr.iova).toBe(va);
    expect(ctx.pageList(mr)![5]).toBe(mm.translate(va + 0x5000n)!.phys);
    ctx.deregisterMr(mr);
  });

  it('THP-backed memory at a 2M-aligned (not 4M-aligned) VA: 2M pages', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB, address: 0x10_0020_0000n });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, 4n * MiB, RW), RW);
    expect(mr.pageSize).toBe(2n * MiB);
    expect(mr.numBlocks).toBe(2);
    expect(ctx.pageList(mr)![1]).toBe(mm.translate(va + 2n * MiB)!.phys);
    ctx.deregisterMr(mr);
  });

  it('1G hugetlb: one 1G page; the legacy sg path needs the same page size', () => {
    const { mm, system, device, allocator } = rdmaMachine();
    system.reserveHugetlb(18, 1);
    const va = mm.mmap({ kind: 'hugetlb', hugeOrder: 18, length: GiB, address: 0x100_0000_0000n });
    const ctx = new RdmaContext(device);
    const umem = ibUmemGet(device, mm, va, GiB, RW);
    const mr = ctx.registerMr(umem, RW);
    expect(mr.pageSize).toBe(GiB);
    expect(mr.numBlocks).toBe(1);
    expect(umem.metadataBytes).toBe(32);
    const legacy = ibUmemGetLegacy(device, mm, va, GiB, RW);
    const lmr = ctx.registerMr(legacy, RW);
    expect(lmr.pageSize).toBe(GiB);
    expect(legacy.pinned.pages.length).toBe(262_144);
    expect(legacy.pageArrayBytes).toBe(262_144 * 8);
    expect(legacy.table.origNents).toBe(1);
    const folio = allocator.folioAt(mm.translate(va)!.phys >> 12n)!;
    expect(folio.pincount).toBe(2 * 262_144);
    ctx.deregisterMr(lmr);
    ctx.deregisterMr(mr);
    expect(folio.pincount).toBe(0);
    // Release dirtied the folio (the umem was writable).
    expect(system.isDirty(folio)).toBe(true);
  });

  it('an IOVA other than the VA changes the page size', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB, address: 0x10_0020_0000n });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, 4n * MiB, RW), RW, { iova: 0x1000n });
    expect(mr.pageSize).toBe(0x1000n);
    expect(mr.numBlocks).toBe(1024);
  });
});

describe('RDMA WRITE and READ through an MR', () => {
  it('a write lands in the process memory at the right bytes, and reads back', () => {
    const { mm, device, metrics } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 64n * 1024n });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va + 0x10n, 0x8000n, RW), RW);
    const data = pattern(0x3000);
    ctx.rdmaWrite(mr.rkey, va + 0x1ff0n, data);
    expect(mm.readUser(va + 0x1ff0n, data.length)).toEqual(data);
    expect(ctx.rdmaRead(mr.rkey, va + 0x1ff0n, 0x3000)).toEqual(data);
    expect(metrics.get('devices.dma_bytes_written')).toBe(0x3000);
  });

  it('refuses unknown keys, out-of-bounds and unpermitted accesses with EACCES', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, 0x4000n, RW), RW);
    const ro = ctx.registerMr(
      ibUmemGet(device, mm, va, 0x4000n, IB_ACCESS_REMOTE_READ),
      IB_ACCESS_REMOTE_READ,
    );
    expectErrno(() => ctx.rdmaWrite(mr.rkey + 1, va, new Uint8Array(4)), 'EACCES', /rkey/);
    expectErrno(() => ctx.rdmaWrite(mr.rkey, va + 0x3ffen, new Uint8Array(4)), 'EACCES', /outside/);
    expectErrno(() => ctx.rdmaWrite(mr.rkey, va - 1n, new Uint8Array(1)), 'EACCES', /outside/);
    expectErrno(() => ctx.rdmaWrite(ro.rkey, va, new Uint8Array(4)), 'EACCES', /remote write/);
    expect(ctx.rdmaRead(ro.rkey, va, 4)).toEqual(new Uint8Array(4));
    ctx.deregisterMr(mr);
    expectErrno(() => ctx.rdmaWrite(mr.rkey, va, new Uint8Array(4)), 'EACCES', /rkey/);
    expectErrno(() => ctx.deregisterMr(mr), 'EINVAL');
  });

  it('refuses bad registrations as the kernel does', () => {
    const { mm, device } = rdmaMachine();
    const ctx = new RdmaContext(device);
    const va = mm.mmap({ kind: 'anon', length: MiB });
    expectErrno(
      () => ctx.registerMr(ibUmemGet(device, mm, va, 0x1000n, RW), IB_ACCESS_REMOTE_WRITE),
      'EINVAL',
      /LOCAL_WRITE/,
    );
    expectErrno(() => ibUmemGet(device, mm, va, 0n, RW), 'EINVAL');
    expectErrno(() => ibUmemGet(device, mm, (1n << 64n) - 0x800n, 0x1000n, RW), 'EINVAL');
    const bar = mm.mmap({ kind: 'pfnmap', length: MiB, phys: GPU_BAR1, shared: true });
    expectErrno(() => ibUmemGet(device, mm, bar, 0x1000n, RW), 'EFAULT', /dma-buf/);
    const only2m = rdmaMachine({ pgszBitmap: 0x20_0000n });
    const va2 = only2m.mm.mmap({ kind: 'anon', length: MiB, address: 0x10_0000_1000n });
    const ctx2 = new RdmaContext(only2m.device);
    expectErrno(
      () => ctx2.registerMr(ibUmemGet(only2m.device, only2m.mm, va2, 0x1000n, RW), RW),
      'EINVAL',
      /no page size/,
    );
  });

  it('a failed DMA map unpins what was pinned', () => {
    const { mm, device, allocator } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const failing = {
      ...device,
      dma: {
        ...device.dma,
        mapPhyrs: () => {
          throw new Error('map failed');
        },
      },
    };
    expect(() => ibUmemGet(failing, mm, va, MiB, RW)).toThrow('map failed');
    for (const folio of allocator.liveFolios()) expect(folio.pincount).toBe(0);
  });
});

describe('MR over a dma-buf', () => {
  it('dynamic: move_notify zaps the page list, the next access re-maps and lands in the new place', () => {
    const { device, topology, allocator, bytes, maps } = rdmaMachine();
    const a = allocator.allocFolio(9);
    const b = allocator.allocFolio(9);
    const exporter = new PhyrExporter(PhyrList.fromRanges([[a.pfn << 12n, 2n * MiB]]), {
      topology,
      dynamic: true,
    });
    const umem = ibUmemDmabufGet(device, exporter.buf, 0x1000n, MiB, RW);
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(umem, RW, { iova: 0x5000_0000n });
    expect(mr.pageSize).toBe(0x1000n);
    expect(mr.numBlocks).toBe(256);
    ctx.rdmaWrite(mr.rkey, 0x5000_0010n, pattern(64, 1));
    expect(bytes.read((a.pfn << 12n) + 0x1010n, 64)).toEqual(pattern(64, 1));
    exporter.move(PhyrList.fromRanges([[b.pfn << 12n, 2n * MiB]]));
    expect(ctx.pageList(mr)).toBeUndefined();
    expect(umem.isMapped).toBe(false);
    expect(maps.live).toBe(0);
    ctx.rdmaWrite(mr.rkey, 0x5000_0010n, pattern(64, 2));
    expect(bytes.read((b.pfn << 12n) + 0x1010n, 64)).toEqual(pattern(64, 2));
    expect(umem.mapCount).toBe(2);
    // Revoke: the mapping goes and every later access fails.
    exporter.buf.revoke();
    expect(ctx.pageList(mr)).toBeUndefined();
    let caught: unknown;
    try {
      ctx.rdmaWrite(mr.rkey, 0x5000_0010n, pattern(8, 3));
    } catch (e) {
      caught = e;
    }
    expect(isPhysrError(caught, 'ENODEV')).toBe(true);
    expect(bytes.read((b.pfn << 12n) + 0x1010n, 64)).toEqual(pattern(64, 2));
    ctx.deregisterMr(mr);
    expect(maps.live).toBe(0);
  });

  it('pinned over a GPU BAR: an RDMA WRITE lands in the BAR bytes by P2P', () => {
    const { device, topology, bytes, metrics } = rdmaMachine();
    const exporter = new PhyrExporter(PhyrList.fromRanges([[GPU_BAR1, 4n * MiB]]), { topology });
    const umem = ibUmemDmabufGetPinned(device, exporter.buf, 0n, 4n * MiB, RW);
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(umem, RW, { iova: 0n });
    // IOVA 0 against a 1G-aligned BAR: the smallest size covering the 4M span's bits is 1G.
    expect(mr.pageSize).toBe(GiB);
    expect(mr.numBlocks).toBe(1);
    const data = pattern(0x2000, 9);
    ctx.rdmaWrite(mr.rkey, 0x1f_f000n, data);
    expect(bytes.read(GPU_BAR1 + 0x1f_f000n, 0x2000)).toEqual(data);
    expect(metrics.get('devices.p2p_switch_bytes') + metrics.get('devices.p2p_host_bridge_bytes')).toBe(
      0x2000,
    );
    // Since 7.1 the pinned importer has no invalidate_mappings: a revoke cannot reach it, the wait
    // for its unmap times out (WARN) and its mapping stays, so the WRITE still lands. This is why
    // vfio-pci refuses such importers (dma_buf_attach_revocable).
    const report = exporter.buf.revoke();
    expect(report.notified).toEqual([]);
    expect(report.unmapTimedOut).toEqual([`${umem.attachment.describe()} (p2p)`]);
    ctx.rdmaWrite(mr.rkey, 0n, data);
    expect(bytes.read(GPU_BAR1, 0x2000)).toEqual(data);
    ctx.deregisterMr(mr);
    expect(umem.attachment.mappings).toHaveLength(0);
  });

  it('pinned over a vfio-pci BAR export: EOPNOTSUPP at attach (not revocable, 7.1)', () => {
    const { device, topology } = rdmaMachine();
    const vfio = new VfioPciDevice({ topology, bdf: GPU_BDF });
    const buf = vfio.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 4n * MiB }] });
    expectErrno(
      () => ibUmemDmabufGetPinned(device, buf, 0n, 4n * MiB, RW),
      'EOPNOTSUPP',
      /invalidate_mappings/,
    );
    expect(buf.attachments).toHaveLength(0);
    // The dynamic importer (ib_umem_dmabuf_get) is revocable and attaches.
    const dynamic = ibUmemDmabufGet(device, buf, 0n, 4n * MiB, RW);
    expect(buf.attachments).toHaveLength(1);
    dynamic.release();
  });
});

import { describe, expect, it } from 'vitest';
import { fail, PhyrList } from '../../src/core/index.ts';
import { dmaBufExport, PhyrExporter } from '../../src/dmabuf/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGet,
  ibUmemDmabufGetPinned,
  type RdmaDevice,
  rdmaDmaBufDevice,
} from '../../src/rdma/index.ts';
import { expectErrno } from '../errno.ts';
import { rdmaMachine, twoPieceDmaBuf as twoPieces } from './fixture.ts';

const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;
const MiB = 1n << 20n;

describe('ib_umem_dmabuf_get bounds (drivers/infiniband/core/umem_dmabuf.c)', () => {
  it('EINVAL unless [offset, offset + size) is a non-empty part of the buffer', () => {
    const { device, topology, allocator } = rdmaMachine();
    const folio = allocator.allocFolio(10);
    const exporter = new PhyrExporter(PhyrList.fromRanges([[folio.pfn << 12n, 4n * MiB]]), { topology });
    const buf = exporter.buf;
    expectErrno(() => ibUmemDmabufGet(device, buf, 0n, 0n, RW), 'EINVAL', /outside the 0x400000-byte/);
    expectErrno(() => ibUmemDmabufGet(device, buf, -0x1000n, 0x2000n, RW), 'EINVAL', /-0x1000 \+ 0x2000/);
    expectErrno(() => ibUmemDmabufGet(device, buf, 3n * MiB, 2n * MiB, RW), 'EINVAL');
    expect(buf.attachments).toHaveLength(0);
    const tail = ibUmemDmabufGet(device, buf, 3n * MiB, MiB, RW);
    expect(tail.mapPages().totalLength).toBe(MiB);
    tail.release();
  });
});

describe('the dynamic dma-buf umem', () => {
  it('maps on first use, trimmed to the pages holding [offset, offset + length)', () => {
    const { device, exporter, pa, pb } = twoPieces();
    // Bytes 0x1800..0x37ff: pages 1..3 of the buffer, i.e. the second page of a and both of b.
    const umem = ibUmemDmabufGet(device, exporter.buf, 0x1800n, 0x2000n, RW);
    expect(umem.isMapped).toBe(false);
    expect(umem.metadataBytes).toBe(0);
    expectErrno(() => umem.mappedRanges(), 'EAGAIN', /offset 0x1800 is not mapped/);
    const ranges = umem.mapPages();
    expect(ranges.toArray()).toEqual([
      { address: pa + 0x1000n, length: 0x1000n },
      { address: pb, length: 0x2000n },
    ]);
    expect(umem.isMapped).toBe(true);
    expect(umem.mappedRanges()).toBe(ranges);
    // Two DMA ranges (the trimmed view) and the exporter's two physical ranges, 16 bytes each.
    expect(umem.metadataBytes).toBe(64);
    // ib_umem_dmabuf_map_pages maps DMA_BIDIRECTIONAL, once until the next invalidation.
    expect(umem.attachment.mappings.map((m) => m.dir)).toEqual(['BIDIRECTIONAL']);
    expect(umem.mapPages()).toBe(ranges);
    expect(umem.mapCount).toBe(1);
    umem.release();
    expect(exporter.buf.attachments).toHaveLength(0);
    expectErrno(() => umem.mapPages(), 'EINVAL', /was released/);
    expectErrno(() => umem.release(), 'EINVAL', /released twice/);
  });

  it('a move with no MR on the umem unmaps it; the next map follows the new backing', () => {
    const { device, exporter, allocator, maps } = twoPieces();
    const umem = ibUmemDmabufGet(device, exporter.buf, 0n, 0x4000n, RW);
    umem.mapPages();
    expect(maps.live).toBe(1);
    const c = allocator.allocFolio(2);
    exporter.move(PhyrList.fromRanges([[c.pfn << 12n, 0x4000n]]));
    expect(umem.isMapped).toBe(false);
    expect(maps.live).toBe(0);
    expectErrno(() => umem.mappedRanges(), 'EAGAIN', /move_notify/);
    expect(umem.mapPages().toArray()).toEqual([{ address: c.pfn << 12n, length: 0x4000n }]);
    expect(umem.mapCount).toBe(2);
    umem.release();
    expect(maps.live).toBe(0);
  });
});

describe('the pinned dma-buf umem', () => {
  it('host memory: its mapping reports the host path when a revoke cannot reach it', () => {
    const { device, exporter } = twoPieces();
    const umem = ibUmemDmabufGetPinned(device, exporter.buf, 0n, 0x4000n, RW);
    expect(umem.attachment.pinCount).toBe(1);
    const report = exporter.buf.revoke();
    expect(report.unmapTimedOut).toEqual([`${umem.attachment.describe()} (host)`]);
  });

  it('a failed map unpins and detaches, and the map error reaches the caller', () => {
    const { device, exporter } = twoPieces();
    const failing: RdmaDevice = {
      ...device,
      dma: { ...device.dma, mapPhyrs: () => fail('ENOMEM', 'no IOVA space') },
    };
    expectErrno(() => ibUmemDmabufGetPinned(failing, exporter.buf, 0n, 0x4000n, RW), 'ENOMEM', /IOVA/);
    expect(exporter.buf.attachments).toHaveLength(0);
    expect(exporter.pinCount).toBe(0);
  });

  it('a pin the exporter refuses detaches, and the pin error reaches the caller', () => {
    const { device, topology, pa } = twoPieces();
    const buf = dmaBufExport({
      ops: {
        name: 'no-room',
        map: () => PhyrList.fromRanges([[pa, 0x2000n]]),
        pin: () => fail('ENOSPC', 'no room to pin'),
        unpin: () => undefined,
      },
      size: 0x2000n,
      topology,
    });
    expectErrno(() => ibUmemDmabufGetPinned(device, buf, 0n, 0x2000n, RW), 'ENOSPC', /pin/);
    expect(buf.attachments).toHaveLength(0);
  });
});

describe('the RDMA device as a dma-buf importer', () => {
  it('maps host memory on the host path; a second unmap of one mapping does nothing', () => {
    const { device, maps, pa } = twoPieces();
    const importer = rdmaDmaBufDevice(device);
    expect(importer.name).toBe('mlx5_0');
    const list = PhyrList.fromRanges([[pa, 0x2000n]]);
    const mapping = importer.mapForDmaBuf(list, 'BIDIRECTIONAL', { mmio: false });
    expect(mapping.path).toBe('host');
    expect(mapping.ranges.toArray()).toEqual([{ address: pa, length: 0x2000n }]);
    expect(maps.live).toBe(1);
    importer.unmapForDmaBuf(mapping, 'BIDIRECTIONAL');
    expect(maps.live).toBe(0);
    importer.unmapForDmaBuf(mapping, 'BIDIRECTIONAL');
    expect(maps.live).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import { PhyrExporter } from '../../src/dmabuf/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGet,
  ibUmemDmabufGetPinned,
  ibUmemGet,
  RdmaContext,
} from '../../src/rdma/index.ts';
import { expectErrno } from '../errno.ts';
import { rdmaMachine, twoPieceDmaBuf } from './fixture.ts';

const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;
const MiB = 1n << 20n;
const IOVA = 0x5000_0000n;

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 29 + seed) & 0xff);
}

/** A 4K-page MR at IOVA over a dma-buf of two pieces that are not physically adjacent. */
function twoPieceMr() {
  const machine = twoPieceDmaBuf();
  const ctx = new RdmaContext(machine.device);
  const umem = ibUmemDmabufGet(machine.device, machine.exporter.buf, 0n, 0x4000n, RW);
  const mr = ctx.registerMr(umem, RW, { iova: IOVA });
  return { ...machine, ctx, mr };
}

describe('registration rules', () => {
  it('EACCES for a writable MR over memory pinned read-only', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const ro = ibUmemGet(device, mm, va, 0x4000n, IB_ACCESS_REMOTE_READ);
    expectErrno(() => ctx.registerMr(ro, IB_ACCESS_LOCAL_WRITE), 'EACCES', /writable MR .* read-only/);
    expectErrno(() => ctx.registerMr(ro, RW), 'EACCES', /read-only/);
    expect(ctx.registerMr(ro, IB_ACCESS_REMOTE_READ).pageSize).toBe(0x1000n);
  });

  it('mlx5-style keys: mkey index << 8 | variant, index counting up from 1; lkey = rkey', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const first = ctx.registerMr(ibUmemGet(device, mm, va, 0x1000n, RW), RW);
    const second = ctx.registerMr(ibUmemGet(device, mm, va, 0x1000n, RW), RW);
    expect([first.lkey, first.rkey, second.lkey, second.rkey]).toEqual([0x101, 0x101, 0x202, 0x202]);
  });

  it('ib_dereg_mr of an MR this context did not register is EINVAL and leaves the owner alone', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx1 = new RdmaContext(device);
    const ctx2 = new RdmaContext(device);
    const mr1 = ctx1.registerMr(ibUmemGet(device, mm, va, 0x1000n, RW), RW);
    const mr2 = ctx2.registerMr(ibUmemGet(device, mm, va, 0x1000n, RW), RW);
    // Same key (0x101) in both contexts, but not the same MR.
    expect(mr2.rkey).toBe(mr1.rkey);
    expectErrno(() => ctx2.deregisterMr(mr1), 'EINVAL', /key 0x101 is not registered/);
    ctx1.rdmaWrite(mr1.rkey, va, new Uint8Array([5]));
    expect(mm.readUser(va, 1)).toEqual(new Uint8Array([5]));
    ctx2.deregisterMr(mr2);
    ctx1.deregisterMr(mr1);
  });

  it('a dynamic dma-buf MR takes PAGE_SIZE even where a larger page fits (mlx5_umem_dmabuf_default_pgsz)', () => {
    const { device, topology, allocator } = rdmaMachine();
    const folio = allocator.allocFolio(9);
    const list = PhyrList.fromRanges([[folio.pfn << 12n, 2n * MiB]]);
    const dynamic = new PhyrExporter(list, { topology, dynamic: true });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemDmabufGet(device, dynamic.buf, 0n, 2n * MiB, RW), RW, {
      iova: 2n * MiB,
    });
    expect([mr.pageSize, mr.numBlocks]).toEqual([0x1000n, 512]);
    // The pinned umem over the same 2M-aligned memory at a 2M-aligned IOVA gets one 2M page.
    const pinned = new PhyrExporter(list, { topology });
    const pmr = ctx.registerMr(ibUmemDmabufGetPinned(device, pinned.buf, 0n, 2n * MiB, RW), RW, {
      iova: 2n * MiB,
    });
    expect([pmr.pageSize, pmr.numBlocks]).toEqual([2n * MiB, 1]);
  });

  it('a dynamic dma-buf MR on an HCA without 4K pages is EINVAL', () => {
    const { device, topology, allocator } = rdmaMachine({ pgszBitmap: 0x20_0000n });
    const folio = allocator.allocFolio(9);
    const exporter = new PhyrExporter(PhyrList.fromRanges([[folio.pfn << 12n, 2n * MiB]]), {
      topology,
      dynamic: true,
    });
    const ctx = new RdmaContext(device);
    const umem = ibUmemDmabufGet(device, exporter.buf, 0n, 2n * MiB, RW);
    expectErrno(() => ctx.registerMr(umem, RW, { iova: 2n * MiB }), 'EINVAL', /no page size in 0x200000/);
  });
});

describe('remote access checks and translation', () => {
  it('names the right missing right: remote read on a write-only MR', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const wo = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE;
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, 0x1000n, wo), wo);
    expectErrno(() => ctx.rdmaRead(mr.rkey, va, 4), 'EACCES', /0x101 does not allow remote read/);
  });

  it('bounds: an access may end exactly at the MR end; zero length is fine; negative length is not', () => {
    const { mm, device } = rdmaMachine();
    const va = mm.mmap({ kind: 'anon', length: MiB });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGet(device, mm, va, 0x4000n, RW), RW);
    ctx.rdmaWrite(mr.rkey, va + 0x3ffcn, new Uint8Array([1, 2, 3, 4]));
    expect(mm.readUser(va + 0x3ffcn, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(ctx.rdmaRead(mr.rkey, va + 0x4000n, 0)).toEqual(new Uint8Array(0));
    expect(ctx.translate(mr.rkey, va, 0n, IB_ACCESS_REMOTE_READ).count).toBe(0);
    expectErrno(() => ctx.translate(mr.rkey, va + 8n, -1n, IB_ACCESS_REMOTE_READ), 'EACCES', /outside/);
  });

  it('translate walks the page list block by block and merges only DMA-contiguous pieces', () => {
    const { ctx, mr, pa, pb } = twoPieceMr();
    expect(mr.pageSize).toBe(0x1000n);
    // The whole MR: pages 0-1 are folio a, pages 2-3 folio b.
    expect(ctx.translate(mr.rkey, IOVA, 0x4000n, IB_ACCESS_REMOTE_READ).toArray()).toEqual([
      { address: pa, length: 0x2000n },
      { address: pb, length: 0x2000n },
    ]);
    // From the middle of page 1 across into page 2: what is left of page 1, then the start of b.
    expect(ctx.translate(mr.rkey, IOVA + 0x1800n, 0x1000n, IB_ACCESS_REMOTE_WRITE).toArray()).toEqual([
      { address: pa + 0x1800n, length: 0x800n },
      { address: pb, length: 0x800n },
    ]);
  });

  it('RDMA WRITE and READ across a discontiguity move each piece of the payload to its own place', () => {
    const { ctx, mr, pa, pb, bytes } = twoPieceMr();
    const data = pattern(0x1000, 3);
    ctx.rdmaWrite(mr.rkey, IOVA + 0x1800n, data);
    expect(bytes.read(pa + 0x1800n, 0x800)).toEqual(data.subarray(0, 0x800));
    expect(bytes.read(pb, 0x800)).toEqual(data.subarray(0x800));
    expect(ctx.rdmaRead(mr.rkey, IOVA + 0x1800n, 0x1000)).toEqual(data);
  });
});

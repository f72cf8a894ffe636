import { describe, expect, it } from 'vitest';
import { Metrics, PhyrList } from '../../src/core/index.ts';
import { PhyrExporter } from '../../src/dmabuf/index.ts';
import { armLpaeFormat, Iommu, x86SecondStageFormat } from '../../src/iommu/index.ts';
import {
  IommufdCtx as Ctx,
  type IommufdCtx,
  mmUserPinner,
  type UserMemoryPinner,
} from '../../src/iommufd/index.ts';
import { MemorySystem, MmStruct } from '../../src/mm/index.ts';
import { ByteStore, FolioAllocator, MemoryMap, twoSocketServer } from '../../src/platform/index.ts';
import { VfioPciDevice } from '../../src/vfio/index.ts';
import { errnoOf } from '../errno.ts';

const topology = twoSocketServer();
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
const BAR1 = 0x200_0000_0000n;
const KiB = 1024n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;

/** A pinner over a fixed identity layout: user VA v maps physical 0x1_0000_0000 + v. Counts pins. */
function fakePinner(): UserMemoryPinner & { live: number } {
  const state = {
    live: 0,
    pin(uptr: bigint, length: bigint) {
      state.live++;
      let released = false;
      return {
        phys: PhyrList.fromRanges([[0x1_0000_0000n + uptr, length]]),
        unpin() {
          if (released) throw new Error('double unpin');
          released = true;
          state.live--;
        },
      };
    },
  };
  return state;
}

function setup() {
  const metrics = new Metrics();
  const iommu = new Iommu({ name: 'dmar0', format: x86SecondStageFormat(), metrics });
  iommu.addDevice(NIC, 1);
  iommu.addDevice(NVME, 2);
  const ctx: IommufdCtx = new Ctx(metrics);
  const ioas = ctx.ioasAlloc();
  return { metrics, iommu, ctx, ioas };
}

describe('IOAS map rules', () => {
  it('maps user memory at a fixed IOVA into every attached domain, large pages where aligned', () => {
    const { iommu, ctx, ioas } = setup();
    const pin = fakePinner();
    const nic = ctx.bindDevice(iommu, NIC);
    const hwpt = nic.attach(ioas);
    const iova = ioas.mapUser(pin, 0x20_0000n, 4n * MiB, { iova: 0x4000_0000n });
    expect(iova).toBe(0x4000_0000n);
    expect(iommu.translate(NIC, 0x4000_0000n + 0x1234n, 'write')).toBe(0x1_0020_1234n);
    expect(hwpt.domain.pageTable!.lookup(0x4000_0000n)!.pageSize).toBe(2n * MiB);
    // A second device attaching to the IOAS on the same IOMMU reuses the HWPT.
    expect(ctx.bindDevice(iommu, NVME).attach(ioas)).toBe(hwpt);
    expect(pin.live).toBe(1);
  });

  it('fills a HWPT created after the maps', () => {
    const { iommu, ctx, ioas } = setup();
    ioas.mapUser(fakePinner(), 0n, 64n * KiB, { iova: 0x10_0000n });
    const hwpt = ctx.hwptAlloc(iommu, ioas);
    expect(hwpt.domain.iovaToPhys(0x10_8000n)).toBe(0x1_0000_8000n);
  });

  it('refuses as ioas.c / io_pagetable.c do', () => {
    const { iommu, ctx, ioas } = setup();
    // A 4K domain sets the IOAS alignment to 4K (without one it is 1 byte).
    ctx.hwptAlloc(iommu, ioas);
    const pin = fakePinner();
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { readable: false, writable: false }))).toBe(
      'EINVAL',
    );
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0n))).toBe('EINVAL');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1800n))).toBe('EINVAL');
    expect(errnoOf(() => ioas.mapUser(pin, 0x800n, 0x1000n))).toBe('EINVAL');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x1800n }))).toBe('EINVAL');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x2000n, { iova: (1n << 64n) - 0x1000n }))).toBe('EOVERFLOW');
    ioas.mapUser(pin, 0n, 0x4000n, { iova: 0x10_0000n });
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x10_3000n }))).toBe('EEXIST');
    ioas.reserve(0x20_0000n, 0x20_ffffn, 'msi');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x20_8000n }))).toBe('EINVAL');
    // Refused maps leave no pins behind.
    expect(pin.live).toBe(1);
  });

  it('reserved ranges may overlap and are all honoured; reserving over an area is EADDRINUSE (iopt_reserve_iova)', () => {
    const { ioas } = setup();
    const pin = fakePinner();
    ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x10_0000n });
    expect(errnoOf(() => ioas.reserve(0xf_f000n, 0x10_0fffn, 'msi'))).toBe('EADDRINUSE');
    // A wide range, then a narrow one inside it: an IOVA past the narrow one is still reserved.
    ioas.reserve(0x100_0000n, 0x1ff_ffffn, 'wide');
    ioas.reserve(0x110_0000n, 0x110_ffffn, 'narrow');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x180_0000n }))).toBe('EINVAL');
    expect(errnoOf(() => ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x110_8000n }))).toBe('EINVAL');
    expect(ioas.mapUser(pin, 0n, 0x1000n, { iova: 0x200_0000n })).toBe(0x200_0000n);
  });

  it('without a domain any byte range maps; a 4K domain then refuses the sub-page area (iopt_check_iova_alignment)', () => {
    const { iommu, ctx, ioas } = setup();
    const pin = fakePinner();
    expect(ioas.iovaAlignment).toBe(1n);
    expect(ioas.mapUser(pin, 0n, 0x1800n, { iova: 0x10_0000n })).toBe(0x10_0000n);
    expect(errnoOf(() => ctx.hwptAlloc(iommu, ioas))).toBe('EADDRINUSE');
    // A page-multiple area mapped from a sub-page source is refused for its page offset alone.
    const { iommu: iommu2, ctx: ctx2, ioas: offset } = setup();
    offset.mapUser(fakePinner(), 0x800n, 0x1000n, { iova: 0x10_0000n });
    expect(errnoOf(() => ctx2.hwptAlloc(iommu2, offset))).toBe('EADDRINUSE');
    ioas.unmapAll();
    ctx.hwptAlloc(iommu, ioas);
    expect(ioas.iovaAlignment).toBe(0x1000n);
  });

  it('refuses a domain that cannot hold the existing areas (iopt_table_add_domain)', () => {
    const { ioas, metrics } = setup();
    ioas.mapUser(fakePinner(), 0n, 0x1000n, { iova: 0x1000n });
    // A 64K-granule domain cannot take the PAGE_SIZE pages iopt_pages deal in: EINVAL, areas or not.
    const arm64k = new Iommu({ name: 'smmu0', format: armLpaeFormat({ granule: 65536 }), metrics });
    expect(errnoOf(() => new Ctx(metrics).hwptAlloc(arm64k, ioas))).toBe('EINVAL');
    expect(errnoOf(() => new Ctx(metrics).hwptAlloc(arm64k, new Ctx(metrics).ioasAlloc()))).toBe('EINVAL');
    const { ioas: high, iommu } = setup();
    high.mapUser(fakePinner(), 0n, 0x1000n, { iova: 1n << 50n });
    expect(errnoOf(() => new Ctx(metrics).hwptAlloc(iommu, high))).toBe('EADDRINUSE');
  });

  it('allocates the lowest aligned hole above PAGE_SIZE, keeping the source alignment', () => {
    const { ioas } = setup();
    const pin = fakePinner();
    expect(ioas.mapUser(pin, 0x20_0000n, 2n * MiB)).toBe(0x20_0000n);
    // 3 pages from a 16K-aligned uptr: alignment min(16K, 16K) → first 16K-aligned hole.
    expect(ioas.mapUser(pin, 0x4000n, 0x3000n)).toBe(0x4000n);
    expect(ioas.mapUser(pin, 0x1000n, 0x1000n)).toBe(0x1000n);
    expect(ioas.mapUser(pin, 0x1000n, 0x1000n)).toBe(0x2000n);
  });
});

describe('IOAS unmap rules (iommufd selftests)', () => {
  it('partial unmap of an area is ENOENT and keeps it; whole-area unmap unmaps every domain and unpins', () => {
    const { iommu, ctx, ioas, metrics } = setup();
    const pin = fakePinner();
    ctx.bindDevice(iommu, NIC).attach(ioas);
    ioas.mapUser(pin, 0n, 0x4000n, { iova: 0x10_0000n });
    expect(errnoOf(() => ioas.unmap(0x10_0000n, 0x1000n))).toBe('ENOENT');
    expect(errnoOf(() => ioas.unmap(0x10_1000n, 0x3000n))).toBe('ENOENT');
    expect(ioas.listAreas().length).toBe(1);
    iommu.translate(NIC, 0x10_0000n, 'read'); // warm the IOTLB
    const flushes = metrics.get('iommu.iotlb_flushes');
    expect(ioas.unmap(0x10_0000n, 0x4000n)).toBe(0x4000n);
    expect(pin.live).toBe(0);
    expect(metrics.get('iommu.iotlb_flushes')).toBeGreaterThan(flushes);
    expect(errnoOf(() => iommu.translate(NIC, 0x10_0000n, 'read'))).toBe('EFAULT');
    expect(errnoOf(() => ioas.unmap(0x10_0000n, 0x4000n))).toBe('ENOENT');
  });

  it('a range covering several areas unmaps them all; one straddling stops with ENOENT after the earlier ones', () => {
    const { ioas } = setup();
    const pin = fakePinner();
    for (let i = 0n; i < 3n; i++) ioas.mapUser(pin, 0n, 0x2000n, { iova: 0x10_0000n + i * 0x2000n });
    expect(ioas.unmap(0x10_0000n, 0x4000n)).toBe(0x4000n);
    ioas.mapUser(pin, 0n, 0x2000n, { iova: 0x10_0000n });
    expect(errnoOf(() => ioas.unmap(0x10_0000n, 0x5000n))).toBe('ENOENT');
    expect(ioas.listAreas().map((a) => a.start)).toEqual([0x10_4000n]);
    expect(errnoOf(() => ioas.unmap(0n, 0n))).toBe('EINVAL');
    expect(errnoOf(() => ioas.unmap((1n << 64n) - 0x1000n, 0x2000n))).toBe('EOVERFLOW');
  });

  it('unmap-all empties the IOAS and succeeds on an empty one', () => {
    const { ioas } = setup();
    const pin = fakePinner();
    ioas.mapUser(pin, 0n, 0x2000n);
    ioas.mapUser(pin, 0n, 0x2000n);
    expect(ioas.unmapAll()).toBe(0x4000n);
    expect(pin.live).toBe(0);
    expect(ioas.unmapAll()).toBe(0n);
  });

  it('a HWPT with devices cannot be destroyed; detaching blocks the group', () => {
    const { iommu, ctx, ioas } = setup();
    ioas.mapUser(fakePinner(), 0n, 0x1000n, { iova: 0x10_0000n });
    const nic = ctx.bindDevice(iommu, NIC);
    const hwpt = nic.attach(ioas);
    expect(errnoOf(() => hwpt.destroy())).toBe('EBUSY');
    nic.detach();
    expect(errnoOf(() => iommu.translate(NIC, 0x10_0000n, 'read'))).toBe('EFAULT');
    hwpt.destroy();
    expect(ioas.domains.length).toBe(0);
    expect(errnoOf(() => ctx.bindDevice(iommu, GPU))).toBe('ENODEV');
  });
});

describe('user memory through the mm model', () => {
  it('pins on map and unpins on unmap (pin counts back to zero)', () => {
    const map = new MemoryMap([{ kind: 'ram', start: 4n * GiB, last: 8n * GiB - 1n, node: 0 }]);
    const allocator = new FolioAllocator(map);
    const system = new MemorySystem(allocator, { bytes: new ByteStore() });
    const mm = new MmStruct(system);
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB });
    const { ioas, iommu, ctx } = setup();
    ctx.bindDevice(iommu, NIC).attach(ioas);
    const iova = ioas.mapUser(mmUserPinner(mm), va, 4n * MiB);
    const phys = mm.translate(va + 0x3000n)!.phys;
    expect(iommu.translate(NIC, iova + 0x3000n, 'write')).toBe(phys);
    const folio = mm.translate(va)!.folio!;
    // A 2 MiB THP folio (the default anon order 9): the long-term pin takes one ref per page.
    expect(allocator.folioAt(folio.pfn)!.pincount).toBe(512);
    ioas.unmap(iova, 4n * MiB);
    expect(allocator.folioAt(folio.pfn)!.pincount).toBe(0);
  });

  it('a PFN-mapped BAR cannot be pinned (EFAULT): that is what the dma-buf path is for', () => {
    const map = new MemoryMap([{ kind: 'ram', start: 4n * GiB, last: 5n * GiB - 1n, node: 0 }]);
    const mm = new MmStruct(new MemorySystem(new FolioAllocator(map)));
    const vfio = new VfioPciDevice({ topology, bdf: GPU });
    const vma = vfio.mmapBar(1, 0n, 2n * MiB);
    const va = mm.mmap({ kind: 'pfnmap', length: vma.size, phys: vma.cpuAddress, shared: true });
    const { ioas } = setup();
    expect(errnoOf(() => ioas.mapUser(mmUserPinner(mm), va, 2n * MiB))).toBe('EFAULT');
    expect(ioas.listAreas().length).toBe(0);
  });
});

describe('dma-buf maps and revoke', () => {
  it('maps a VFIO BAR dma-buf with IOMMU_MMIO; revoke unmaps every domain before it returns', () => {
    const { iommu, ctx, ioas } = setup();
    const vfio = new VfioPciDevice({ topology, bdf: GPU });
    const buf = vfio.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: GiB, length: 4n * MiB }] });
    const hwptA = ctx.bindDevice(iommu, NIC).attach(ioas);
    const iova = ioas.mapDmaBuf(buf, 2n * MiB, 2n * MiB, { iova: 0x8000_0000n });
    const iommu2 = new Iommu({ name: 'dmar1', format: x86SecondStageFormat() });
    iommu2.addDevice('0000:81:00.0', 1);
    ctx.bindDevice(iommu2, '0000:81:00.0').attach(ioas);
    expect(iommu.translate(NIC, iova + 0x10n, 'write')).toBe(BAR1 + GiB + 2n * MiB + 0x10n);
    expect(iommu2.translate('0000:81:00.0', iova, 'read')).toBe(BAR1 + GiB + 2n * MiB);
    expect(ioas.areaAt(iova)!.prot & 0x10).toBe(0x10); // IOMMU_MMIO
    expect(hwptA.domain.pageTable!.lookup(iova)!.pageSize).toBe(2n * MiB);
    expect(buf.attachments.length).toBe(1);
    expect(buf.attachments[0]!.pinCount).toBe(1);
    vfio.reset();
    // Reset revoked then restored the buffer; iommufd's revoke is for good.
    expect(buf.revoked).toBe(false);
    expect(ioas.revokes.length).toBe(1);
    expect(ioas.revokes[0]!.unmapped.length).toBe(2);
    expect(errnoOf(() => iommu.translate(NIC, iova, 'write'))).toBe('EFAULT');
    expect(errnoOf(() => iommu2.translate('0000:81:00.0', iova, 'read'))).toBe('EFAULT');
    // A domain added later does not map revoked pages either.
    iommu.addDevice(NVME, 2);
    const other = ctx.hwptAlloc(iommu, ioas);
    expect(other.domain.iovaToPhys(iova)).toBe(0n);
    // The area stays until unmapped; unmapping releases the attachment and the reference.
    expect(ioas.unmap(iova, 2n * MiB)).toBe(2n * MiB);
    expect(buf.attachments.length).toBe(0);
    // Mapping it again works now that memory is enabled.
    const again = ioas.mapDmaBuf(buf, 0n, 4n * MiB);
    expect(iommu.translate(NIC, again, 'read')).toBe(BAR1 + GiB);
  });

  it('refuses revoked, multi-range, out-of-range and static-exporter dma-bufs', () => {
    const { ioas } = setup();
    const vfio = new VfioPciDevice({ topology, bdf: GPU });
    const two = vfio.exportDmaBuf({
      regionIndex: 1,
      ranges: [
        { offset: 0n, length: 0x1000n },
        { offset: 0x2000n, length: 0x1000n },
      ],
    });
    expect(errnoOf(() => ioas.mapDmaBuf(two, 0n, 0x2000n))).toBe('EOPNOTSUPP');
    expect(two.attachments.length).toBe(0);
    const one = vfio.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x4000n }] });
    expect(errnoOf(() => ioas.mapDmaBuf(one, 0x2000n, 0x4000n))).toBe('EINVAL');
    vfio.configWrite(0x04, 0);
    expect(errnoOf(() => ioas.mapDmaBuf(one, 0n, 0x4000n))).toBe('ENODEV');
    const plain = new PhyrExporter(PhyrList.fromRanges([[BAR1, 0x4000n]]), { topology });
    // A static exporter has no pin op; the pin is a no-op and the interconnect hands out its ranges.
    const iova = ioas.mapDmaBuf(plain.buf, 0n, 0x4000n);
    expect(ioas.listAreas().map((a) => [a.start, a.last])).toEqual([[iova, iova + 0x3fffn]]);
  });
});

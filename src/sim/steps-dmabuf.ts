/**
 * The seed's chain steps: `export` (vfio-pci exports a BAR range as a dma-buf), `import` (IOMMUFD
 * maps it into an IOAS attached to a device, or an RDMA MR is registered over it), `register-mr`
 * (ib_reg_user_mr over user memory, physr or legacy sg), `revoke` and `reset` (vfio-pci revokes
 * its exports; importers are told and unmap, later accesses fault).
 */
import { COUNTER, DmaRangeList, fail, formatHex, formatSize, PAGE_SIZE } from '../core/index.ts';
import type { DmaDevice } from '../dma/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGet,
  ibUmemGet,
  ibUmemGetLegacy,
  RdmaContext,
  rdmaDeviceOverDma,
} from '../rdma/index.ts';
import { userPhyrs } from './designs.ts';
import { registerStep, type StepResult } from './registry.ts';
import type { SimContext } from './sim-context.ts';
import { DmaTarget, isBuffer, isDmabuf, SimDmabuf, SimMr } from './sim-objects.ts';
import { type SimWorld, worldOf } from './sim-world.ts';
import { underDesigns } from './steps-dma.ts';
import { plural } from './wording.ts';

const ACCESS = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;

const rdmaContexts = new WeakMap<SimWorld, Map<string, RdmaContext>>();

function rdmaContext(world: SimWorld, device: DmaDevice): RdmaContext {
  let byDevice = rdmaContexts.get(world);
  if (byDevice === undefined) {
    byDevice = new Map();
    rdmaContexts.set(world, byDevice);
  }
  let ctx = byDevice.get(device.bdf);
  if (ctx === undefined) {
    ctx = new RdmaContext(
      rdmaDeviceOverDma(device, world.engine(device.bdf), { name: `mlx5_${device.bdf}` }),
    );
    byDevice.set(device.bdf, ctx);
  }
  return ctx;
}

function mrNote(name: string, ctx: SimMr): string {
  const { mr } = ctx;
  return `${name}: rkey ${formatHex(BigInt(mr.rkey))}, ${formatSize(mr.length)} at IOVA ${formatHex(mr.iova)}, page size ${formatSize(mr.pageSize)}, ${plural(mr.numBlocks, 'page-list entry', 'page-list entries')}`;
}

function countMr(context: SimContext, sim: SimMr): void {
  context.metrics.add('rdma.mr_page_size', Number(sim.mr.pageSize));
  context.metrics.add('rdma.mr_blocks', sim.mr.numBlocks);
}

let registered = false;

export function registerDmabufSteps(): void {
  if (registered) return;
  registered = true;

  registerStep('export', (body, context) => {
    const world = worldOf(context);
    const vfio = world.vfio(body.device);
    const bar = vfio.bar(body.bar);
    const length = body.length ?? bar.size - body.offset;
    const buf = vfio.exportDmaBuf({
      regionIndex: body.bar,
      ranges: [{ offset: body.offset, length }],
      name: body.name,
    });
    const exported = vfio.dmaBufs.find((e) => e.buf === buf);
    if (exported === undefined) fail('EINVAL', `vfio-pci did not record the export of ${body.name}`);
    context.objects.define(body.name, 'dmabuf', new SimDmabuf(buf, body.device, exported.phys));
    return {
      notes: [
        `${body.name}: ${body.device} BAR${body.bar} ${formatHex(bar.cpuAddress + body.offset)} + ${formatSize(length)} as a dma-buf (${exported.phys.count} range)`,
      ],
    };
  });

  registerStep('import', (body, context): StepResult => {
    const world = worldOf(context);
    const dmabuf = context.objects.get(body.dmabuf, 'dmabuf', isDmabuf);
    const device = world.dmaDevice(body.device);
    if (body.into === 'iommufd') {
      const iommu = world.machine.iommuOf(device.bdf);
      if (iommu === undefined) fail('ENODEV', `${body.device} has no IOMMU: IOMMUFD cannot bind it`);
      const ioas = world.iommufd.ioasAlloc();
      world.iommufd.bindDevice(iommu, device.bdf).attach(ioas);
      const size = dmabuf.buf.size;
      const iova = ioas.mapDmaBuf(dmabuf.buf, 0n, size, body.iova === undefined ? {} : { iova: body.iova });
      const target = new DmaTarget(body.name, 'physr', DmaRangeList.fromRanges([[iova, size]]), 0n, () => {
        ioas.unmap(iova, size);
      });
      context.objects.define(body.name, 'mapping', target);
      const designRuns = underDesigns(context, device, dmabuf.phys, 'BIDIRECTIONAL', 'bar', {
        use: 'iommufd',
        iova,
      });
      return {
        path: 'physr',
        ...(designRuns === undefined ? {} : { designRuns }),
        notes: [
          `${body.name}: IOAS maps ${body.dmabuf} at IOVA ${formatHex(iova)} for ${device.bdf} (${iommu.name})`,
        ],
      };
    }
    const ctx = rdmaContext(world, device);
    const umem = ibUmemDmabufGet(ctx.device, dmabuf.buf, 0n, dmabuf.buf.size, ACCESS);
    const sim = new SimMr(
      ctx,
      ctx.registerMr(umem, ACCESS, body.iova === undefined ? { iova: 0n } : { iova: body.iova }),
    );
    countMr(context, sim);
    context.objects.define(body.name, 'mr', sim);
    const designRuns = underDesigns(context, device, dmabuf.phys, 'BIDIRECTIONAL', 'bar', { use: 'rdma-mr' });
    return {
      path: 'physr',
      notes: [mrNote(body.name, sim)],
      ...(designRuns === undefined ? {} : { designRuns }),
    };
  });

  registerStep('register-mr', (body, context): StepResult => {
    const world = worldOf(context);
    const buffer = context.objects.get(body.buffer, 'buffer', isBuffer);
    const device = world.dmaDevice(body.device);
    const ctx = rdmaContext(world, device);
    let umem: ReturnType<typeof ibUmemGet> | ReturnType<typeof ibUmemGetLegacy>;
    if (body.via === 'physr') {
      umem = ibUmemGet(ctx.device, buffer.mm, buffer.va, buffer.length, ACCESS);
    } else {
      umem = ibUmemGetLegacy(ctx.device, buffer.mm, buffer.va, buffer.length, ACCESS);
      // ib_umem_get's page list: one page of pointers at a time, held only while it builds the table.
      context.metrics.add(COUNTER.sgScratchBytes, umem.scratchPeakBytes);
    }
    const sim = new SimMr(
      ctx,
      ctx.registerMr(umem, ACCESS, body.iova === undefined ? {} : { iova: body.iova }),
    );
    countMr(context, sim);
    context.objects.define(body.name, 'mr', sim);
    // The umem covers the whole pages under the buffer, as ib_umem_get pins them.
    const first = buffer.va & -PAGE_SIZE;
    const end = (buffer.va + buffer.length + PAGE_SIZE - 1n) & -PAGE_SIZE;
    const designRuns = underDesigns(
      context,
      device,
      userPhyrs(buffer.mm, first, end - first),
      'BIDIRECTIONAL',
      'user',
      { use: 'rdma-mr' },
    );
    return {
      path: body.via,
      notes: [mrNote(body.name, sim)],
      ...(designRuns === undefined ? {} : { designRuns }),
    };
  });

  registerStep('revoke', (body, context) => {
    const dmabuf = context.objects.get(body.dmabuf, 'dmabuf', isDmabuf);
    const report = dmabuf.buf.revoke();
    // 7.1 unmaps nothing itself: mappings an importer kept are what the kernel WARNs about.
    const left = report.unmapTimedOut.length;
    const warn = left === 0 ? '' : `; ${plural(left, 'mapping')} left in place (unmap wait timed out)`;
    return { notes: [`${body.dmabuf} revoked: ${report.notified.length} importers notified${warn}`] };
  });

  registerStep('reset', (body, context) => {
    const world = worldOf(context);
    const vfio = world.vfioOf(body.device);
    if (vfio === undefined) fail('ENODEV', `${body.device} is not bound to vfio-pci (export from it first)`);
    const report = vfio.reset();
    const notified = report.revoked.reduce((n, r) => n + r.report.notified.length, 0);
    const left = report.revoked.reduce((n, r) => n + r.report.unmapTimedOut.length, 0);
    const warn = left === 0 ? '' : `, ${plural(left, 'mapping')} left in place (unmap wait timed out)`;
    return {
      notes: [
        `${body.device} reset (${report.cause}): ${plural(report.revoked.length, 'dma-buf')} revoked, ${plural(notified, 'importer')} notified${warn}, ${report.restored.length} restored`,
      ],
    };
  });
}

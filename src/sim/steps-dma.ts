/**
 * DMA steps over the DMA layer and the device models: `probe` (a driver's dma_set_mask & co.),
 * `map` of a buffer, pin or dma-buf in either design (physr: one PhyrList mapped, mostly into one
 * IOVA; sg: page array → sg_table → dma_map_sgtable), `sync`, `unmap`, `dma-write` / `dma-read` by a
 * device at the DMA addresses a mapping handed out, and `flush` (drain lazy flush queues).
 * An access the fabric aborts (IOMMU fault, unsupported request) is data: the step's `fault`.
 */
import {
  COUNTER,
  type DmaRangeList,
  fail,
  formatHex,
  formatSize,
  Metrics,
  type PhyrList,
  phyrListToSgTable,
  SCATTERLIST_MAX_SEGMENT,
  type SgTable,
  sgAllocTableFromPagesSegment,
} from '../core/index.ts';
import { DmaAccessError, describeAccess } from '../devices/index.ts';
import { type DmaDevice, type DmaDirection, dmaSyncSg, type IovaLayout } from '../dma/index.ts';
import { dmaDeviceImporter } from '../dmabuf/index.ts';
import {
  pinnedPagesAsRanges,
  pinUserPagesLegacyWhole,
  pinUserPagesWhole,
  unpinUserPages,
  unpinUserPagesLegacy,
} from '../mm/index.ts';
import {
  DESIGN_BYTES_LIMIT,
  type DesignMapInput,
  type DesignOutcome,
  mapUnderDesigns,
  probedProps,
  userPhyrs,
} from './designs.ts';
import { resolvePlatform } from './engine.ts';
import { patternBytes } from './pattern.ts';
import { registerStep, type StepResult } from './registry.ts';
import { type DesignPath, LAYOUT_MAX_RANGES, type MappingLayout, type RangePair } from './report.ts';
import type { SimContext } from './sim-context.ts';
import {
  DmaTarget,
  isBuffer,
  isDmabuf,
  isMr,
  isPin,
  isTarget,
  type SimBuffer,
  type SimMr,
} from './sim-objects.ts';
import { worldOf } from './sim-world.ts';
import { checkTransfer } from './steps-memory.ts';
import { plural, viaText } from './wording.ts';

const DIRECTION = {
  'to-device': 'TO_DEVICE',
  'from-device': 'FROM_DEVICE',
  bidirectional: 'BIDIRECTIONAL',
} as const satisfies Record<string, DmaDirection>;

/** An sg_table segment limit for a device: sg->length is 32-bit (include/linux/scatterlist.h). */
function sgMaxSegment(device: DmaDevice): number {
  return device.maxSegmentSize > BigInt(SCATTERLIST_MAX_SEGMENT)
    ? SCATTERLIST_MAX_SEGMENT
    : Number(device.maxSegmentSize);
}

function segmentNotes(kinds: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].map(([k, n]) => `${n} ${k}`).join(', ');
}

interface Mapped {
  readonly target: DmaTarget;
  readonly note: string;
  readonly layout?: MappingLayout;
}

function pairs(list: PhyrList | DmaRangeList): RangePair[] {
  const out: RangePair[] = [];
  const n = Math.min(list.count, LAYOUT_MAX_RANGES);
  for (let i = 0; i < n; i++) out.push([list.addressAt(i), list.lengthAt(i)]);
  return out;
}

/** A map's address spaces for the report (lists cut at LAYOUT_MAX_RANGES). */
function mappingLayout(
  name: string,
  design: DesignPath,
  phys: PhyrList,
  dma: DmaRangeList,
  via: string,
  extra: { iovaLayout?: IovaLayout; bounce?: readonly DmaRangeList[] } = {},
): MappingLayout {
  return {
    name,
    design,
    ...(extra.iovaLayout === undefined ? {} : { iovaLayout: extra.iovaLayout }),
    via,
    physCount: phys.count,
    phys: pairs(phys),
    dmaCount: dma.count,
    dma: pairs(dma),
    bounce: (extra.bounce ?? []).flatMap(pairs).slice(0, LAYOUT_MAX_RANGES),
  };
}

/** Maps a PhyrList through the physr DMA API; returns the target and a note. */
function mapPhysr(
  context: SimContext,
  device: DmaDevice,
  what: string,
  list: PhyrList,
  dir: DmaDirection,
  bufferOffset: bigint,
  onRelease: () => void,
  mmio: boolean,
  layout: IovaLayout = 'packed',
): Mapped {
  const mapping = device.map(list, dir, { ...(mmio ? { mmio: true } : {}), layout });
  for (const segment of mapping.segments)
    context.metrics.add(`sim.segments_${segment.kind.replace(/-/g, '_')}`);
  const target = new DmaTarget(
    what,
    'physr',
    mapping.dma,
    bufferOffset,
    () => {
      device.unmap(mapping);
      onRelease();
    },
    (forCpu) => (forCpu ? device.syncForCpu(mapping) : device.syncForDevice(mapping)),
  );
  const reason = mapping.fallbackReason === undefined ? '' : ` (fallback: ${mapping.fallbackReason})`;
  const kinds = mapping.segments.map((s) => s.kind);
  return {
    target,
    layout: mappingLayout(what, 'physr', list, mapping.dma, viaText(kinds), {
      // The IOVA layout means something only where the map took an IOVA.
      ...(kinds.includes('iova') ? { iovaLayout: layout } : {}),
      bounce: mapping.segments.filter((s) => s.kind === 'bounce').map((s) => s.dma),
    }),
    note: `${what}: ${plural(list.count, 'range')} → ${plural(mapping.dma.count, 'DMA range')} ${viaText(kinds)}; segments: ${segmentNotes(kinds)}${reason}; first DMA address ${formatHex(mapping.dma.addressAt(0))}`,
  };
}

/** Maps an sg_table through dma_map_sgtable; returns the target and a note. */
function mapSg(
  device: DmaDevice,
  what: string,
  table: SgTable,
  dir: DmaDirection,
  bufferOffset: bigint,
  onRelease: () => void,
): Mapped {
  const nents = device.mapSg(table, dir);
  const dma = table.toDmaRangeList();
  const target = new DmaTarget(
    what,
    'sg',
    dma,
    bufferOffset,
    () => {
      device.unmapSg(table, dir);
      onRelease();
    },
    (forCpu) => dmaSyncSg(device, table, dir, forCpu),
  );
  return {
    target,
    layout: mappingLayout(
      what,
      'sg',
      table.toPhyrList(),
      dma,
      `via dma_map_sg (${plural(nents, 'DMA segment')})`,
    ),
    note: `${what}: ${plural(table.origNents, 'sg entry', 'sg entries')} (${table.metadataBytes} B) → ${plural(nents, 'DMA segment')}; first DMA address ${formatHex(dma.addressAt(0))}`,
  };
}

function mapBuffer(
  context: SimContext,
  device: DmaDevice,
  name: string,
  buffer: SimBuffer,
  offset: bigint,
  length: bigint,
  via: DesignPath,
  dir: DmaDirection,
  layout: IovaLayout,
) {
  const start = buffer.va + offset;
  if (via === 'physr') {
    const pinned = pinUserPagesWhole(buffer.mm, start, length, { write: true, longterm: false });
    return mapPhysr(
      context,
      device,
      name,
      pinned.phyrs,
      dir,
      offset,
      () => unpinUserPages(pinned, { dirty: true }),
      false,
      layout,
    );
  }
  const pages = pinUserPagesLegacyWhole(buffer.mm, start, length, { write: true });
  // The whole page array exists while sg_alloc_table_from_pages builds the table; after that the
  // table's entries name the pages (unpin walks them), so the array counts at peak only.
  context.metrics.add(COUNTER.sgScratchBytes, pages.metadataBytes);
  const table = sgAllocTableFromPagesSegment(pages.pages, pages.offset, length, sgMaxSegment(device));
  // The array goes once the table is built; unpin walks the table's pages (a 64 GiB pin would
  // otherwise keep 128 MiB of pointers until unmap).
  const held = pinnedPagesAsRanges(pages, table.toPhyrList());
  return mapSg(device, name, table, dir, offset, () => unpinUserPages(held, { dirty: true }));
}

/**
 * The same map under every design the scenario compares, each on a fresh copy of the machine
 * (designs.ts): the memory the step just mapped (user pages or a BAR range), its bytes, the device
 * probed the same way.
 */
export function underDesigns(
  context: SimContext,
  device: DmaDevice,
  source: PhyrList,
  dir: DmaDirection,
  memory: 'user' | 'bar',
  use: Pick<DesignMapInput, 'use' | 'iova'> = {},
): DesignOutcome[] | undefined {
  const designs = context.scenario.designs;
  const model = context.platform.machine?.model;
  if (designs.length === 0 || model === undefined) return undefined;
  const length = source.totalLength;
  let bytes: Uint8Array | undefined;
  if (length <= DESIGN_BYTES_LIMIT) {
    const copy = new Uint8Array(Number(length));
    let at = 0;
    source.forEachRange((address, len) => {
      copy.set(model.bytes.read(address, Number(len)), at);
      at += Number(len);
    });
    bytes = copy;
  }
  const input: DesignMapInput = {
    platform: () =>
      resolvePlatform(context.scenario, { seed: context.seed, metrics: new Metrics() }).machine!.model,
    machineOptions: { strict: context.iommuMode === 'strict' },
    bdf: device.bdf,
    deviceProps: probedProps(device),
    source,
    bytes,
    dir,
    memory,
    ...use,
  };
  return mapUnderDesigns(input, designs);
}

/** The DMA range list of a target at [offset, offset + length) and the buffer offset it starts at. */
function targetSpan(context: SimContext, name: string, offset: bigint, length: bigint) {
  const target = context.objects.get(name, 'mapping', isTarget);
  if (offset + length > target.dma.totalLength) {
    fail(
      'EINVAL',
      `${formatHex(offset)} + ${formatSize(length)} is outside "${name}" (${formatSize(target.dma.totalLength)} of DMA ranges)`,
    );
  }
  return {
    list: target.dma.slice(offset, length),
    bufferOffset: target.bufferOffset + offset,
    // A DMA through a mapping belongs to the mapping's design: its IOTLB work and faults count there.
    via: target.via,
  };
}

/** Runs one DMA transfer range by range; an aborted access stops it and is the step's fault. */
function transfer(
  list: DmaRangeList,
  each: (address: bigint, at: number, length: number) => string | undefined,
): string | undefined {
  let at = 0;
  let fault: string | undefined;
  list.forEachRange((address, length) => {
    if (fault !== undefined) return;
    fault = each(address, at, Number(length));
    at += Number(length);
  });
  return fault;
}

let registered = false;

export function registerDmaSteps(): void {
  if (registered) return;
  registered = true;

  registerStep('probe', (body, context) => {
    const world = worldOf(context);
    const bdf = world.bdf(body.device);
    const device = world.probe(bdf, {
      ...(body.dmaMask === undefined ? {} : { dmaMask: body.dmaMask }),
      ...(body.maxSegmentSize === undefined ? {} : { maxSegmentSize: body.maxSegmentSize }),
      ...(body.segmentBoundary === undefined ? {} : { segmentBoundaryMask: body.segmentBoundary }),
      ...(body.untrusted === undefined ? {} : { untrusted: body.untrusted }),
      ...(body.passthrough === undefined ? {} : { passthrough: body.passthrough }),
    });
    const domain = device.domain?.type ?? 'none (no IOMMU)';
    return {
      notes: [
        `${body.device} = ${bdf}: DMA mask ${formatHex(device.dmaMask)}, max segment ${formatSize(device.maxSegmentSize)}, domain ${domain}${device.usesIommu ? ' (dma-iommu)' : ' (dma-direct)'}`,
      ],
    };
  });

  registerStep('map', (body, context): StepResult => {
    const world = worldOf(context);
    const device = world.dmaDevice(body.device);
    const dir = DIRECTION[body.direction];
    if (body.via === 'sg' && body.layout !== 'packed') {
      fail(
        'EINVAL',
        `layout: ${body.layout} is a physr IOVA layout; the legacy sg path maps as dma_map_sg does`,
      );
    }
    const kind = context.objects.kindOf(body.buffer);
    let mapped: Mapped;
    let designRuns: DesignOutcome[] | undefined;
    if (kind === 'dmabuf') {
      const dmabuf = context.objects.get(body.buffer, 'dmabuf', isDmabuf);
      const length = body.length ?? dmabuf.buf.size - body.offset;
      if (body.via === 'physr') {
        // A dynamic importer of the dma-buf: revoke's invalidate_mappings unmaps it (drivers/dma-buf/dma-buf.c).
        const buf = dmabuf.buf;
        const attachment = buf.attach(dmaDeviceImporter(device), {
          allowPeer2peer: true,
          invalidateMappings(att) {
            for (const m of att.mappings) buf.unmap(m);
          },
        });
        const mapping = buf.map(attachment, dir);
        const ranges = mapping.ranges.slice(body.offset, length);
        context.metrics.add(`sim.segments_${(mapping.p2p ?? 'host').replace(/-/g, '_')}`);
        mapped = {
          target: new DmaTarget(body.name, 'physr', ranges, body.offset, () => {
            if (attachment.mappings.includes(mapping)) buf.unmap(mapping);
            buf.detach(attachment);
          }),
          layout: mappingLayout(
            body.name,
            'physr',
            mapping.phys,
            ranges,
            mapping.p2p === undefined ? `via ${mapping.path}` : viaText([mapping.p2p]),
          ),
          note: `${body.name}: dma-buf ${body.buffer} attached by ${device.bdf}: ${mapping.p2p === undefined ? `host memory via ${mapping.path}` : `peer BAR ${viaText([mapping.p2p])}`}; ${plural(ranges.count, 'DMA range')} at ${formatHex(ranges.addressAt(0))}`,
        };
      } else {
        const table = phyrListToSgTable(dmabuf.phys.slice(body.offset, length), {
          maxSegment: sgMaxSegment(device),
        });
        mapped = mapSg(device, body.name, table, dir, body.offset, () => {});
      }
      designRuns = underDesigns(context, device, dmabuf.phys.slice(body.offset, length), dir, 'bar');
    } else if (kind === 'pin') {
      const pin = context.objects.get(body.buffer, 'pin', isPin);
      if (pin.released) fail('EINVAL', `pin "${body.buffer}" was released`);
      if (pin.phyrs !== undefined) {
        const list = pin.phyrs.phyrs.slice(body.offset, body.length ?? pin.length - body.offset);
        mapped = mapPhysr(
          context,
          device,
          body.name,
          list,
          dir,
          pin.offset + body.offset,
          () => {},
          false,
          body.layout,
        );
      } else {
        const pages = pin.pages!;
        const table = sgAllocTableFromPagesSegment(
          pages.pages,
          pages.offset,
          pin.length,
          sgMaxSegment(device),
        );
        mapped = mapSg(device, body.name, table, dir, pin.offset, () => {});
      }
      if (pin.via !== body.via)
        fail('EINVAL', `pin "${body.buffer}" is in the ${pin.via} form, not ${body.via}`);
    } else {
      const buffer = context.objects.get(body.buffer, 'buffer', isBuffer);
      const length = body.length ?? buffer.length - body.offset;
      if (body.offset + length > buffer.length)
        fail('EINVAL', `${formatHex(body.offset)} + ${formatSize(length)} is outside "${body.buffer}"`);
      mapped = mapBuffer(context, device, body.name, buffer, body.offset, length, body.via, dir, body.layout);
      designRuns = underDesigns(
        context,
        device,
        userPhyrs(buffer.mm, buffer.va + body.offset, length),
        dir,
        'user',
      );
    }
    context.objects.define(body.name, 'mapping', mapped.target);
    return {
      path: body.via,
      notes: [mapped.note],
      ...(mapped.layout === undefined ? {} : { layout: mapped.layout }),
      ...(designRuns === undefined ? {} : { designRuns }),
    };
  });

  registerStep('sync', (body, context) => {
    const target = context.objects.get(body.mapping, 'mapping', isTarget);
    if (target.sync === undefined)
      fail('EINVAL', `"${body.mapping}" has no CPU sync (not a DMA-API mapping)`);
    target.sync(body.for === 'cpu');
    return { path: target.via };
  });

  registerStep('unmap', (body, context): StepResult => {
    const kind = context.objects.kindOf(body.mapping);
    if (kind === 'pin') {
      const pin = context.objects.get(body.mapping, 'pin', isPin);
      if (pin.released) fail('EINVAL', `pin "${body.mapping}" was already released`);
      if (pin.phyrs !== undefined) unpinUserPages(pin.phyrs, { dirty: true });
      else unpinUserPagesLegacy(pin.pages!, { dirty: true });
      pin.released = true;
      return { path: pin.via };
    }
    if (kind === 'mr') {
      const mr = context.objects.get(body.mapping, 'mr', isMr);
      mr.context.deregisterMr(mr.mr);
      mr.released = true;
      return { path: mrDesign(mr), notes: [`${body.mapping}: deregistered`] };
    }
    const target = context.objects.get(body.mapping, 'mapping', isTarget);
    target.release();
    // Lazy mode queues the IOTLB invalidation: the later flush is this design's cost.
    if (context.iommuMode === 'lazy') worldOf(context).flushQueuedBy.add(target.via);
    return { path: target.via };
  });

  registerStep('dma-write', (body, context): StepResult => {
    const world = worldOf(context);
    const engine = world.engine(body.device);
    checkTransfer('dma-write', body.length);
    const n = Number(body.length);
    if (context.objects.kindOf(body.buffer) === 'mr')
      return mrAccess(context, body.buffer, body.offset, n, body.pattern);
    const { list, bufferOffset, via } = targetSpan(context, body.buffer, body.offset, body.length);
    const data = patternBytes(body.pattern, bufferOffset, n);
    const fault = transfer(list, (address, at, length) => {
      const record = engine.tryDmaWrite(address, data.subarray(at, at + length));
      return record.fault === undefined ? undefined : describeAccess(record);
    });
    return fault === undefined
      ? {
          path: via,
          notes: [`${body.device} wrote ${formatSize(body.length)} over ${plural(list.count, 'DMA range')}`],
        }
      : { path: via, observed: { fault } };
  });

  registerStep('dma-read', (body, context): StepResult => {
    const world = worldOf(context);
    const engine = world.engine(body.device);
    checkTransfer('dma-read', body.length);
    const n = Number(body.length);
    if (context.objects.kindOf(body.buffer) === 'mr')
      return mrAccess(context, body.buffer, body.offset, n, undefined);
    const { list, bufferOffset, via } = targetSpan(context, body.buffer, body.offset, body.length);
    const out = new Uint8Array(n);
    const fault = transfer(list, (address, at, length) => {
      const { record, data } = engine.tryDmaRead(address, length);
      if (record.fault !== undefined) return describeAccess(record);
      out.set(data, at);
      return undefined;
    });
    return fault === undefined
      ? { path: via, observed: { bytes: out, offset: bufferOffset } }
      : { path: via, observed: { fault } };
  });

  registerStep('flush', (_body, context): StepResult => {
    const world = worldOf(context);
    world.machine.flushQueues();
    const queuedBy = [...world.flushQueuedBy];
    world.flushQueuedBy.clear();
    const note = 'flush queues drained (IOTLB invalidated for every queued unmap)';
    // The drain is the cost of the unmaps that queued it: credited to their design when there is one.
    if (queuedBy.length === 1)
      return { path: queuedBy[0]!, notes: [`${note}; queued by ${queuedBy[0]} unmaps`] };
    if (queuedBy.length === 0) return { notes: [`${note}; nothing was queued`] };
    return { notes: [`${note}; queued by both designs' unmaps, so credited to neither`] };
  });
}

/** The design an MR's umem was made by. */
function mrDesign(mr: SimMr): DesignPath | undefined {
  const kind = mr.mr.umem.kind;
  return kind === 'user-legacy' ? 'sg' : kind === 'user' ? 'physr' : undefined;
}

/** RDMA WRITE (pattern given) or READ by a peer into/from an MR: (rkey, MR iova + offset). */
function mrAccess(
  context: SimContext,
  name: string,
  offset: bigint,
  length: number,
  pattern: Parameters<typeof patternBytes>[0] | undefined,
): StepResult {
  const { context: rdma, mr } = context.objects.get(name, 'mr', isMr);
  try {
    if (pattern !== undefined) {
      rdma.rdmaWrite(mr.rkey, mr.iova + offset, patternBytes(pattern, offset, length));
      return { notes: [`RDMA WRITE of ${formatSize(BigInt(length))} to rkey ${formatHex(BigInt(mr.rkey))}`] };
    }
    return { observed: { bytes: rdma.rdmaRead(mr.rkey, mr.iova + offset, length), offset } };
  } catch (error) {
    if (error instanceof DmaAccessError) return { observed: { fault: error.reason } };
    throw error;
  }
}

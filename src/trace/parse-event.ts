/**
 * One parser per event name, each reading the fields its TP_printk prints (include/trace/events/dma.h,
 * iommu.h, swiotlb.h in 6.12, 6.18 and 7.1). The table is keyed by event name; a name not in it is an
 * unknown event (counted, never an error). Changes across releases handled here:
 *  - 6.18 renamed dma_map_page/dma_unmap_page to dma_map_phys/dma_unmap_phys (same fields);
 *  - dma_map_sg gained `nents=a/b ents=c/d` and ` [TRUNCATED]` past 128 entries (the older form
 *    prints only the three arrays);
 *  - the alloc/free classes print `dir=` or not, depending on the release.
 */

import { type EventFields, FieldError } from './event-fields.ts';
import type { TraceEvent, TraceOrigin } from './events.ts';

type Parser = (f: EventFields, event: string, at: TraceOrigin) => TraceEvent;

const map: Parser = (f, event, at) => ({
  kind: 'map',
  event,
  at,
  device: f.device(),
  dir: f.dir(),
  dma: f.hex('dma_addr'),
  size: f.decimal('size'),
  phys: f.hex('phys_addr'),
  attrs: f.attrs(),
});

const unmap: Parser = (f, event, at) => ({
  kind: 'unmap',
  event,
  at,
  device: f.device(),
  dir: f.dir(),
  dma: f.hex('dma_addr'),
  size: f.decimal('size'),
});

const mapSg: Parser = (f, event, at) => {
  const dmaAddrs = f.hexArray('dma_addrs');
  const sizes = f.hexArray('sizes');
  const physAddrs = f.hexArray('phys_addrs');
  if (sizes.length !== dmaAddrs.length)
    throw new FieldError(`sizes has ${sizes.length} entries, dma_addrs ${dmaAddrs.length}`);
  const counted = f.has('nents');
  const truncated = f.truncated;
  let nents = physAddrs.length;
  let ents = dmaAddrs.length;
  if (counted) {
    const n = f.fraction('nents');
    const e = f.fraction('ents');
    if (n.shown !== physAddrs.length)
      throw new FieldError(`nents=${n.shown}/${n.full} but phys_addrs has ${physAddrs.length} entries`);
    if (e.shown !== dmaAddrs.length)
      throw new FieldError(`ents=${e.shown}/${e.full} but dma_addrs has ${dmaAddrs.length} entries`);
    if (truncated !== (n.full > n.shown || e.full > e.shown))
      throw new FieldError(
        truncated ? '[TRUNCATED] with every entry printed' : 'entries missing without [TRUNCATED]',
      );
    nents = n.full;
    ents = e.full;
  } else if (truncated) {
    throw new FieldError('[TRUNCATED] without nents=/ents= counts');
  }
  return {
    kind: 'map_sg',
    event,
    at,
    device: f.device(),
    dir: f.dir(),
    counted,
    nents,
    ents,
    truncated,
    dmaAddrs,
    sizes,
    physAddrs,
    attrs: f.attrs(),
  };
};

const mapSgErr: Parser = (f, event, at) => ({
  kind: 'map_sg_err',
  event,
  at,
  device: f.device(),
  dir: f.dir(),
  // The kernel labels the phys array `dma_addrs=` in this event's print format.
  physAddrs: f.hexArray('dma_addrs'),
  err: f.int('err'),
});

const unmapSg: Parser = (f, event, at) => ({
  kind: 'unmap_sg',
  event,
  at,
  device: f.device(),
  dir: f.dir(),
  physAddrs: f.hexArray('phys_addrs'),
});

function alloc(failed: boolean): Parser {
  return (f, event, at) => ({
    kind: 'alloc',
    event,
    at,
    device: f.device(),
    dir: f.optionalDir(),
    dma: f.hex('dma_addr'),
    size: f.decimal('size'),
    physAddrs: f.has('phys_addrs') ? f.hexArray('phys_addrs') : undefined,
    failed,
  });
}

const free: Parser = (f, event, at) => ({
  kind: 'free',
  event,
  at,
  device: f.device(),
  dir: f.optionalDir(),
  dma: f.hex('dma_addr'),
  size: f.decimal('size'),
});

function syncSingle(toCpu: boolean): Parser {
  return (f, event, at) => ({
    kind: 'sync_single',
    event,
    at,
    device: f.device(),
    dir: f.dir(),
    toCpu,
    dma: f.hex('dma_addr'),
    size: f.decimal('size'),
  });
}

function syncSg(toCpu: boolean): Parser {
  return (f, event, at) => {
    const dmaAddrs = f.hexArray('dma_addrs');
    const sizes = f.hexArray('sizes');
    if (sizes.length !== dmaAddrs.length)
      throw new FieldError(`sizes has ${sizes.length} entries, dma_addrs ${dmaAddrs.length}`);
    return { kind: 'sync_sg', event, at, device: f.device(), dir: f.dir(), toCpu, dmaAddrs, sizes };
  };
}

const swiotlbBounced: Parser = (f, event, at) => {
  // "dev_name: %s dma_mask=%llx dev_addr=%llx size=%zu %s"
  if (f.words[0] !== 'dev_name:') throw new FieldError('no dev_name: label');
  const device = f.words[1];
  if (device === undefined) throw new FieldError('no device name after dev_name:');
  const mode = f.words[2];
  if (mode !== 'FORCE' && mode !== 'NORMAL') throw new FieldError('no FORCE/NORMAL at the end');
  return {
    kind: 'swiotlb_bounced',
    event,
    at,
    device,
    dmaMask: f.hex('dma_mask'),
    devAddr: f.hex('dev_addr'),
    size: f.decimal('size'),
    force: mode === 'FORCE',
  };
};

function iommuRange(f: EventFields): { iova: bigint; size: bigint } {
  if (f.words[0] !== 'IOMMU:') throw new FieldError('no IOMMU: label');
  const iova = f.hex('iova');
  const size = f.decimal('size');
  const end = f.hex('iova_end');
  if (BigInt.asUintN(64, iova + size) !== end)
    throw new FieldError(`iova range end 0x${end.toString(16)} is not iova + size`);
  return { iova, size };
}

const iommuMap: Parser = (f, event, at) => ({
  kind: 'iommu_map',
  event,
  at,
  ...iommuRange(f),
  paddr: f.hex('paddr'),
});

const iommuUnmap: Parser = (f, event, at) => ({
  kind: 'iommu_unmap',
  event,
  at,
  ...iommuRange(f),
  unmappedSize: f.decimal('unmapped_size'),
});

const ioPageFault: Parser = (f, event, at) => {
  // "IOMMU:%s %s iova=0x%016llx flags=0x%04x": driver glued to the label, then the device.
  const label = f.words[0];
  if (label === undefined || !label.startsWith('IOMMU:')) throw new FieldError('no IOMMU: label');
  let driver = label.slice('IOMMU:'.length);
  let device = f.words[1];
  if (driver.length > 0 && device === undefined) {
    device = driver;
    driver = '';
  }
  if (device === undefined) throw new FieldError('no device name');
  return {
    kind: 'io_page_fault',
    event,
    at,
    driver,
    device,
    iova: f.hex('iova'),
    flags: Number(f.hex('flags')),
  };
};

function iommuDevice(withGroup: boolean): Parser {
  return (f, event, at) => {
    if (f.words[0] !== 'IOMMU:') throw new FieldError('no IOMMU: label');
    return {
      kind: 'iommu_device',
      event,
      at,
      device: f.raw('device'),
      groupId: withGroup ? f.int('groupID') : undefined,
    };
  };
}

/** Every event physr reads, by the name the trace prints. */
export const EVENT_PARSERS: ReadonlyMap<string, Parser> = new Map<string, Parser>([
  ['dma_map_phys', map],
  ['dma_map_page', map],
  ['dma_map_resource', map],
  ['dma_unmap_phys', unmap],
  ['dma_unmap_page', unmap],
  ['dma_unmap_resource', unmap],
  ['dma_map_sg', mapSg],
  ['dma_map_sg_err', mapSgErr],
  ['dma_unmap_sg', unmapSg],
  ['dma_alloc', alloc(false)],
  ['dma_alloc_pages', alloc(false)],
  ['dma_alloc_sgt', alloc(false)],
  ['dma_alloc_sgt_err', alloc(true)],
  ['dma_free', free],
  ['dma_free_pages', free],
  ['dma_free_sgt', free],
  ['dma_sync_single_for_cpu', syncSingle(true)],
  ['dma_sync_single_for_device', syncSingle(false)],
  ['dma_sync_sg_for_cpu', syncSg(true)],
  ['dma_sync_sg_for_device', syncSg(false)],
  ['swiotlb_bounced', swiotlbBounced],
  ['map', iommuMap],
  ['unmap', iommuUnmap],
  ['io_page_fault', ioPageFault],
  ['attach_device_to_domain', iommuDevice(false)],
  ['add_device_to_group', iommuDevice(true)],
  ['remove_device_from_group', iommuDevice(true)],
]);

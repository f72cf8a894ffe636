/**
 * dma-buf: one driver (the exporter) shares a buffer with others (importers), after
 * drivers/dma-buf/dma-buf.c and include/linux/dma-buf.h, with the physr change the seed proposes:
 * an exporter's map hands out a `PhyrList` (physical ranges), not an sg_table, and the DMA layer
 * maps that list for the importer's device — P2P included.
 *
 * Rules modelled (file cited where each lives):
 *  - attach (dma_buf_attach) makes a static attachment; dma_buf_dynamic_attach makes a dynamic one.
 *    Since 7.1 invalidate_mappings (move_notify before) is optional for a dynamic importer (a pinned
 *    importer may leave it out); `dma_buf_attach_revocable` says whether the importer has it and so
 *    can be revoked. `peer2peer` is the importer's allow_peer2peer; static importers never have it.
 *  - map (dma_buf_map_attachment): a static importer of a dynamic exporter (one with a pin op) pins
 *    the buffer implicitly for the life of the mapping, because it cannot be told to let go.
 *  - pin/unpin (dma_buf_pin) are for dynamic importers only (EINVAL for static ones).
 *  - dma_buf_invalidate_mappings (dma_buf_move_notify before 7.1) calls every importer's
 *    invalidate_mappings, which must drop its mappings and fence any access it cannot stop at once.
 *  - peer memory: an exporter never hands BAR memory to an importer that did not allow peer2peer
 *    (vfio_pci_dma_buf_attach refuses EOPNOTSUPP; here checked once, for every exporter), and a
 *    pair the p2pdma rules refuse is EINVAL (dma_buf_phys_vec_to_sgt, drivers/dma-buf/dma-buf-mapping.c).
 *  - revoke: in the kernel the revoked bit lives in the exporter (vfio_pci_dma_buf.revoked); the
 *    model hoists it into the buffer so every exporter shares one implementation. Revoked buffers
 *    refuse attach and map with ENODEV (vfio_pci_dma_buf_attach/map). A revoke follows
 *    vfio_pci_dma_buf_move (7.1): set the bit, dma_buf_invalidate_mappings, wait for every fence
 *    (dma_resv_wait_timeout, DMA_RESV_USAGE_BOOKKEEP), then wait up to a second for the importers'
 *    unmaps (the kref/completion). Nothing is unmapped by force: a mapping an importer left behind
 *    stays (the device can still reach the memory) and the kernel WARNs "Timed out waiting for
 *    DMABUF unmap"; the report lists those mappings.
 */
import {
  COUNTER,
  type DmaRangeList,
  fail,
  formatHex,
  formatSize,
  type Metrics,
  Metrics as MetricsClass,
  type PhyrList,
} from '../core/index.ts';
import type { DmaDirection } from '../dma/index.ts';
import {
  type Bdf,
  barContaining,
  calcP2pDecision,
  type P2pMapType,
  type PciTopology,
} from '../platform/index.ts';
import { DmaResv, type FenceWaitReport } from './fence.ts';

/** enum dma_data_direction. */

/** What a device's DMA mapping of a buffer gives back. */
export interface DmaBufDeviceMapping {
  /** The DMA addresses the device uses, in buffer order. */
  readonly ranges: DmaRangeList;
  /** Which path the DMA layer took (e.g. `iova`, `bus-address`), for reports. */
  readonly path: string;
}

/**
 * The importer's device as the dma-buf layer needs it: a name, its PCI function (undefined for a
 * placeholder device that never does DMA, like iommufd's global misc device), and the DMA layer's map
 * and unmap of a physical range list. `dmaDeviceImporter` (dma-device-importer.ts) adapts a DmaDevice.
 */
export interface DmaBufDevice {
  readonly name: string;
  readonly bdf: Bdf | undefined;
  mapForDmaBuf(list: PhyrList, dir: DmaDirection, options: { mmio: boolean }): DmaBufDeviceMapping;
  unmapForDmaBuf(mapping: DmaBufDeviceMapping, dir: DmaDirection): void;
}

/** struct dma_buf_attach_ops: what a dynamic importer provides. */
export interface DmaBufImporterOps {
  readonly allowPeer2peer: boolean;
  /**
   * invalidate_mappings (move_notify before 7.1), optional since 7.1: the buffer moves or is
   * revoked, so unmap every mapping of `attachment` (and fence what cannot stop).
   */
  invalidateMappings?(attachment: DmaBufAttachment): void;
}

/**
 * dma_buf_attach_revocable (drivers/dma-buf/dma-buf.c, 7.1): the importer implements
 * invalidate_mappings, so it unmaps when told and a revoke completes in bounded time.
 */
export function dmaBufAttachRevocable(att: DmaBufAttachment): boolean {
  return att.importerOps?.invalidateMappings !== undefined;
}

/** struct dma_buf_ops, physr style: `map` returns physical ranges. */
export interface DmaBufExporterOps {
  /** exp_name. */
  readonly name: string;
  attach?(attachment: DmaBufAttachment): void;
  detach?(attachment: DmaBufAttachment): void;
  /** Present ⇒ the exporter is dynamic (dma_buf_is_dynamic). */
  pin?(attachment: DmaBufAttachment): void;
  unpin?(attachment: DmaBufAttachment): void;
  map(attachment: DmaBufAttachment, dir: DmaDirection): PhyrList;
  unmap?(attachment: DmaBufAttachment, list: PhyrList, dir: DmaDirection): void;
  release?(buf: DmaBuf): void;
  /**
   * The vfio ↔ iommufd private interconnect (vfio_pci_dma_buf_iommufd_map): the physical ranges
   * themselves, for an importer that programs its own IOMMU page tables.
   */
  privatePhys?(attachment: DmaBufAttachment): PhyrList;
}

export interface DmaBufExportInfo {
  readonly ops: DmaBufExporterOps;
  readonly size: bigint;
  readonly name?: string;
  /** The PCI topology used to classify peer memory and decide P2P. */
  readonly topology: PciTopology;
  readonly metrics?: Metrics;
  /** Initial revoked state (vfio exports revoked when memory decoding is off). */
  readonly revoked?: boolean;
}

/** One mapping of an attachment (what dma_buf_map_attachment returns). */
export interface DmaBufMapping {
  readonly attachment: DmaBufAttachment;
  readonly dir: DmaDirection;
  /** The exporter's physical ranges. */
  readonly phys: PhyrList;
  /** The device's DMA view. */
  readonly ranges: DmaRangeList;
  readonly path: string;
  /** Peer memory: the p2pdma map type for this importer; undefined for host memory. */
  readonly p2p: P2pMapType | undefined;
}

interface MappingRecord {
  readonly mapping: DmaBufMapping;
  readonly device: DmaBufDeviceMapping;
  readonly implicitPin: boolean;
}

/** What a revoke did, in order. */
export interface RevokeReport {
  /** Attachments whose invalidate_mappings ran. */
  readonly notified: readonly string[];
  /** Fences the revoke waited for before completing. */
  readonly waited: FenceWaitReport;
  /**
   * Mappings importers left in place: the wait for their unmap timed out after a second and the
   * kernel WARNs; the mappings stay.
   */
  readonly unmapTimedOut: readonly string[];
  /** False when the buffer was already revoked (nothing done). */
  readonly changed: boolean;
}

let nextBufId = 1;
let nextAttachmentId = 1;

/** struct dma_buf_attachment. */
export class DmaBufAttachment {
  readonly id: number;
  readonly dmabuf: DmaBuf;
  readonly device: DmaBufDevice;
  readonly importerOps: DmaBufImporterOps | undefined;
  /** Importer-private data (importer_priv). */
  readonly importerPriv: unknown;
  readonly peer2peer: boolean;
  /** @internal */ readonly records: MappingRecord[] = [];
  /** @internal */ pins = 0;
  /** @internal */ detached = false;

  /** @internal */
  constructor(dmabuf: DmaBuf, device: DmaBufDevice, ops: DmaBufImporterOps | undefined, priv: unknown) {
    this.id = nextAttachmentId++;
    this.dmabuf = dmabuf;
    this.device = device;
    this.importerOps = ops;
    this.importerPriv = priv;
    this.peer2peer = ops?.allowPeer2peer ?? false;
  }

  get dynamic(): boolean {
    return this.importerOps !== undefined;
  }

  get mappings(): readonly DmaBufMapping[] {
    return this.records.map((r) => r.mapping);
  }

  get pinCount(): number {
    return this.pins;
  }

  describe(): string {
    return `attachment ${this.id} of ${this.dmabuf.describe()} by ${this.device.name}`;
  }
}

/** struct dma_buf. */
export class DmaBuf {
  readonly id: number;
  readonly ops: DmaBufExporterOps;
  readonly size: bigint;
  readonly name: string;
  readonly resv = new DmaResv();
  readonly topology: PciTopology;
  readonly metrics: Metrics;
  private readonly attached: DmaBufAttachment[] = [];
  private refs = 1;
  private revokedFlag: boolean;

  constructor(info: DmaBufExportInfo) {
    if (info.size <= 0n) fail('EINVAL', `dma-buf size ${formatHex(info.size)} must be positive`);
    this.id = nextBufId++;
    this.ops = info.ops;
    this.size = info.size;
    this.name = info.name ?? `${info.ops.name}-${this.id}`;
    this.topology = info.topology;
    this.metrics = info.metrics ?? new MetricsClass();
    this.revokedFlag = info.revoked ?? false;
  }

  get dynamic(): boolean {
    return this.ops.pin !== undefined;
  }

  get revoked(): boolean {
    return this.revokedFlag;
  }

  get released(): boolean {
    return this.refs === 0;
  }

  get attachments(): readonly DmaBufAttachment[] {
    return [...this.attached];
  }

  describe(): string {
    return `dma-buf ${this.id} "${this.name}" (${this.ops.name}, ${formatSize(this.size)})`;
  }

  // --- references (get_dma_buf / dma_buf_put) --------------------------------------------------

  get(): this {
    this.live('take a reference to');
    this.refs++;
    return this;
  }

  /** dma_buf_put: the last reference releases the buffer (exporter release op). */
  put(): void {
    this.live('drop a reference to');
    this.refs--;
    if (this.refs === 0) {
      if (this.attached.length > 0) {
        fail('EBUSY', `${this.describe()} released with ${this.attached.length} attachment(s) left`);
      }
      this.ops.release?.(this);
    }
  }

  // --- attach / detach ---------------------------------------------------------------------------

  /** dma_buf_attach (no importer ops) or dma_buf_dynamic_attach. */
  attach(device: DmaBufDevice, importer?: DmaBufImporterOps, importerPriv?: unknown): DmaBufAttachment {
    this.live('attach to');
    const att = new DmaBufAttachment(this, device, importer, importerPriv);
    // The exporter's own checks come first (vfio_pci_dma_buf_attach refuses a non-peer2peer importer
    // with EOPNOTSUPP before it looks at its revoked bit).
    this.ops.attach?.(att);
    if (this.revokedFlag) fail('ENODEV', `${this.describe()} is revoked: no new attachments`);
    this.attached.push(att);
    this.metrics.add('dmabuf.attaches');
    return att;
  }

  /** dma_buf_detach: EBUSY while the attachment still has mappings or pins. */
  detach(att: DmaBufAttachment): void {
    this.own(att);
    if (att.records.length > 0) fail('EBUSY', `${att.describe()} still has ${att.records.length} mapping(s)`);
    if (att.pins > 0) fail('EBUSY', `${att.describe()} is still pinned ${att.pins} time(s)`);
    this.ops.detach?.(att);
    att.detached = true;
    this.attached.splice(this.attached.indexOf(att), 1);
  }

  // --- pin / unpin -------------------------------------------------------------------------------

  /** dma_buf_pin: only dynamic importers pin (static ones are pinned by mapping). */
  pin(att: DmaBufAttachment): void {
    this.own(att);
    if (!att.dynamic) fail('EINVAL', `${att.describe()} is static: only dynamic importers pin (dma_buf_pin)`);
    this.ops.pin?.(att);
    att.pins++;
  }

  unpin(att: DmaBufAttachment): void {
    this.own(att);
    if (att.pins === 0) fail('EINVAL', `${att.describe()} is not pinned`);
    this.ops.unpin?.(att);
    att.pins--;
  }

  // --- map / unmap -------------------------------------------------------------------------------

  /** dma_buf_map_attachment: exporter's ranges, P2P checks, then the DMA layer's map for the device. */
  map(att: DmaBufAttachment, dir: DmaDirection): DmaBufMapping {
    this.own(att);
    if (this.revokedFlag) fail('ENODEV', `${this.describe()} is revoked: ${att.device.name} cannot map it`);
    const implicitPin = this.dynamic && !att.dynamic;
    if (implicitPin) this.ops.pin?.(att);
    let phys: PhyrList | undefined;
    try {
      phys = this.ops.map(att, dir);
      const p2p = this.checkPeerMemory(att, phys);
      const device = att.device.mapForDmaBuf(phys, dir, { mmio: p2p !== undefined });
      const mapping: DmaBufMapping = {
        attachment: att,
        dir,
        phys,
        ranges: device.ranges,
        path: device.path,
        p2p,
      };
      att.records.push({ mapping, device, implicitPin });
      this.metrics.add('dmabuf.maps');
      // The exporter built this list for the map (where the proposal replaces its sg_table).
      this.metrics.add(COUNTER.physrRanges, phys.count);
      this.metrics.add(COUNTER.physrMetadataBytes, phys.metadataBytes);
      return mapping;
    } catch (error) {
      if (phys !== undefined) this.ops.unmap?.(att, phys, dir);
      if (implicitPin) this.ops.unpin?.(att);
      throw error;
    }
  }

  /** dma_buf_unmap_attachment. EINVAL for a mapping this attachment does not hold. */
  unmap(mapping: DmaBufMapping): void {
    const att = mapping.attachment;
    this.own(att);
    const i = att.records.findIndex((r) => r.mapping === mapping);
    if (i < 0) fail('EINVAL', `${att.describe()} holds no such mapping (double unmap?)`);
    this.teardown(att, i);
  }

  // --- move_notify and revoke --------------------------------------------------------------------

  /**
   * dma_buf_invalidate_mappings (dma_buf_move_notify before 7.1): every importer that has
   * invalidate_mappings, in attach order. Returns who ran.
   */
  invalidateMappings(): string[] {
    const notified: string[] = [];
    for (const att of [...this.attached]) {
      const invalidate = att.importerOps?.invalidateMappings;
      if (invalidate === undefined) continue;
      invalidate.call(att.importerOps, att);
      notified.push(att.describe());
    }
    this.metrics.add('dmabuf.invalidate_mappings', notified.length);
    return notified;
  }

  /**
   * Revoke the memory as vfio_pci_dma_buf_move(vdev, true) does (7.1): refuse new maps, invalidate
   * the importers' mappings, wait for every fence, then wait for the unmaps. `again` is
   * vfio_pci_dma_buf_cleanup at close: it runs the whole sequence even on a revoked buffer.
   */
  revoke(options: { again?: boolean } = {}): RevokeReport {
    this.live('revoke');
    if (this.revokedFlag && options.again !== true) {
      return {
        notified: [],
        waited: { waitedFor: [], alreadySignaled: 0 },
        unmapTimedOut: [],
        changed: false,
      };
    }
    const changed = !this.revokedFlag;
    this.revokedFlag = true;
    const notified = this.invalidateMappings();
    const waited = this.resv.wait('bookkeep');
    // wait_for_completion_timeout(1 s) on the map/unmap kref: an importer that did not unmap is a
    // WARN, and its mapping stays.
    const unmapTimedOut: string[] = [];
    for (const att of this.attached) {
      for (const r of att.records) unmapTimedOut.push(`${att.describe()} (${r.mapping.path})`);
    }
    if (unmapTimedOut.length > 0) this.metrics.add('dmabuf.revoke_unmap_timeouts', unmapTimedOut.length);
    this.metrics.add('dmabuf.revokes');
    return { notified, waited, unmapTimedOut, changed };
  }

  /**
   * Lift a revoke (vfio_pci_dma_buf_move(vdev, false)): clear the bit, invalidate the importers'
   * mappings again (so they map anew) and wait for the fences. Returns who was told.
   */
  unrevoke(): string[] {
    this.live('un-revoke');
    if (!this.revokedFlag) return [];
    this.revokedFlag = false;
    const notified = this.invalidateMappings();
    this.resv.wait('bookkeep');
    return notified;
  }

  /** The private interconnect (vfio → iommufd). ENODEV when revoked, EOPNOTSUPP when not offered. */
  privatePhys(att: DmaBufAttachment): PhyrList {
    this.own(att);
    if (this.ops.privatePhys === undefined) {
      fail('EOPNOTSUPP', `${this.ops.name} offers no physical-address interconnect`);
    }
    if (this.revokedFlag) fail('ENODEV', `${this.describe()} is revoked`);
    return this.ops.privatePhys(att);
  }

  // --- internals ---------------------------------------------------------------------------------

  private teardown(att: DmaBufAttachment, index: number): void {
    const [record] = att.records.splice(index, 1);
    const { mapping, device, implicitPin } = record!;
    att.device.unmapForDmaBuf(device, mapping.dir);
    this.ops.unmap?.(att, mapping.phys, mapping.dir);
    if (implicitPin) this.ops.unpin?.(att);
    this.metrics.add('dmabuf.unmaps');
  }

  /**
   * Peer memory in the list: every range must be wholly host memory or wholly inside one BAR. BAR
   * memory needs peer2peer and a p2pdma path to the importer's device.
   */
  private checkPeerMemory(att: DmaBufAttachment, phys: PhyrList): P2pMapType | undefined {
    let result: P2pMapType | undefined;
    for (let i = 0; i < phys.count; i++) {
      const start = phys.addressAt(i);
      const last = phys.lastAt(i);
      const hit = barContaining(this.topology, start);
      const lastHit = barContaining(this.topology, last);
      if (hit?.function.bdf !== lastHit?.function.bdf || hit?.bar.index !== lastHit?.bar.index) {
        fail(
          'EINVAL',
          `range ${i} of ${this.describe()} (${formatHex(start)}..${formatHex(last)}) straddles a BAR edge`,
        );
      }
      if (hit === undefined) continue;
      if (!att.peer2peer) {
        fail(
          'EOPNOTSUPP',
          `${this.describe()} is PCI BAR memory of ${hit.function.bdf} and ${att.device.name} did not allow peer2peer`,
        );
      }
      if (att.device.bdf === undefined) {
        fail(
          'EINVAL',
          `${att.device.name} is not a PCI device: it cannot reach BAR memory of ${hit.function.bdf}`,
        );
      }
      const decision = calcP2pDecision(this.topology, hit.function.bdf, att.device.bdf);
      if (decision.mapType === 'not-supported') {
        fail(
          'EINVAL',
          `P2P from ${att.device.bdf} to ${hit.function.bdf} is not supported: ${decision.reason}`,
        );
      }
      // A through-host-bridge range makes the whole mapping need the IOMMU/host path.
      if (result !== 'through-host-bridge') result = decision.mapType;
    }
    return result;
  }

  private own(att: DmaBufAttachment): void {
    if (att.dmabuf !== this) fail('EINVAL', `${att.describe()} does not belong to ${this.describe()}`);
    if (att.detached) fail('EINVAL', `${att.describe()} is detached`);
  }

  private live(what: string): void {
    if (this.refs === 0) fail('EINVAL', `cannot ${what} ${this.describe()}: it was released`);
  }
}

/** dma_buf_export. */
export function dmaBufExport(info: DmaBufExportInfo): DmaBuf {
  return new DmaBuf(info);
}

/**
 * A vfio-pci device and its dma-buf export of BAR ranges (VFIO_DEVICE_FEATURE_DMA_BUF, the 2025
 * series "vfio/pci: Allow MMIO regions to be exported through dma-buf"):
 * drivers/vfio/pci/vfio_pci_dmabuf.c, vfio_pci_core.c, vfio_pci_config.c.
 *
 * Rules:
 *  - the request: at least one range and no flags (EINVAL); region index must be a BAR, below the ROM
 *    region (ENODEV); every range non-empty with page-aligned offset and length, total not
 *    overflowing nor reaching 2^63 (EINVAL, validate_dmabuf_input); the BAR must be a memory BAR
 *    that has a p2pdma provider (EINVAL, vfio_pci_core_get_dmabuf_phys); offset + length must not
 *    overflow (EOVERFLOW)
 *    and must stay inside the BAR (EINVAL, vfio_pci_core_fill_phys_vec).
 *  - a new export starts revoked when memory decoding is off (`revoked = !memory enabled`).
 *  - attach (vfio_pci_dma_buf_attach): the importer must allow peer2peer (EOPNOTSUPP), the buffer
 *    must not be revoked (ENODEV), and since 7.1 the importer must be revocable
 *    (dma_buf_attach_revocable: it has invalidate_mappings; EOPNOTSUPP otherwise). The exporter has
 *    no pin op since 7.1, so dma_buf_pin of a revocable importer (iommufd) succeeds, while a pinned
 *    importer without invalidate_mappings (ib_umem_dmabuf_get_pinned) is refused at attach.
 *  - clearing PCI_COMMAND_MEMORY through a config write, entering D3hot, and a function reset revoke
 *    every export (vfio_pci_dma_buf_move(vdev, true): invalidate_mappings, wait for the fences,
 *    wait for the importers' unmaps); after the write / power change / reset, if memory decoding is
 *    enabled, they are un-revoked again (vfio_pci_dma_buf_move(vdev, false)) and importers, told
 *    both times, may map again. A reset first brings the function to D0
 *    (vfio_pci_core_ioctl_reset: vfio_pci_set_power_state(vdev, PCI_D0)), so exports come back even
 *    after a reset from D3hot; it keeps the user's command register (saved and restored around the
 *    FLR).
 *  - closing the device (vfio_pci_core_close_device → vfio_pci_dma_buf_cleanup) revokes every export
 *    for good, telling the importers again even when the export was already revoked: the export
 *    forgets the device and is never un-revoked.
 *  - iommufd's private interconnect (vfio_pci_dma_buf_iommufd_map) hands out the physical range only
 *    for single-range exports (EOPNOTSUPP otherwise).
 *  - BAR mmap gives a PFN-mapped VMA (VM_IO | VM_PFNMAP): pin_user_pages refuses it, which is why the
 *    dma-buf exists. Revocation also zaps the mmap (vfio_pci_zap_bars): a CPU access faults until
 *    memory is enabled again.
 */
import {
  alignDown,
  fail,
  formatHex,
  formatSize,
  isAligned,
  type Metrics,
  Metrics as MetricsClass,
  PAGE_SIZE,
  PhyrList,
  U64_MAX,
} from '../core/index.ts';
import {
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  dmaBufAttachRevocable,
  dmaBufExport,
  type RevokeReport,
} from '../dmabuf/index.ts';
import {
  type Bdf,
  type PciBar,
  type PciFunction,
  type PciTopology,
  requireFunction,
} from '../platform/index.ts';

/** PCI config space: the command register and its memory-space enable bit (include/uapi/linux/pci_regs.h). */
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
/** VFIO_PCI_ROM_REGION_INDEX: regions 0..5 are the BARs. */
export const VFIO_PCI_ROM_REGION_INDEX = 6;

/** DMA_IOVA_USE_SWIOTLB (include/linux/dma-mapping.h): bit 63 of a dma_iova_state size. */
const DMA_IOVA_USE_SWIOTLB = 1n << 63n;

/** struct vfio_region_dma_range. */
export interface VfioDmaRange {
  readonly offset: bigint;
  readonly length: bigint;
}

/** struct vfio_device_feature_dma_buf. */
export interface VfioDmaBufRequest {
  readonly regionIndex: number;
  readonly ranges: readonly VfioDmaRange[];
  readonly flags?: number;
  readonly name?: string;
}

export type PciPowerState = 'D0' | 'D3hot';

/** One export: the buffer plus vfio's private state (struct vfio_pci_dma_buf). */
export interface VfioDmaBufExport {
  readonly buf: DmaBuf;
  readonly bar: number;
  readonly phys: PhyrList;
  /** False once the device closed (vfio_pci_dma_buf_cleanup annulled priv->vdev). */
  readonly deviceAttached: boolean;
}

/** What one revoke/un-revoke pass did to every export. */
export interface VfioMoveReport {
  readonly cause: string;
  readonly revoked: readonly { readonly buf: string; readonly report: RevokeReport }[];
  readonly restored: readonly string[];
}

/** A user mmap of a BAR: a PFN-mapped VMA. */
export interface VfioBarMmap {
  readonly bdf: Bdf;
  readonly bar: number;
  readonly cpuAddress: bigint;
  readonly size: bigint;
  /** VM_IO | VM_PFNMAP: no struct pages to pin. */
  readonly pfnmap: true;
}

interface ExportState {
  readonly buf: DmaBuf;
  readonly bar: number;
  readonly phys: PhyrList;
  attached: boolean;
}

export interface VfioPciOptions {
  readonly topology: PciTopology;
  readonly bdf: Bdf;
  readonly metrics?: Metrics;
  /** Initial PCI_COMMAND value (default memory and bus master enabled). */
  readonly command?: number;
}

export class VfioPciDevice {
  readonly fn: PciFunction;
  readonly topology: PciTopology;
  readonly metrics: Metrics;
  private command: number;
  private power: PciPowerState = 'D0';
  private opened = true;
  private readonly exports: ExportState[] = [];
  private zapped = false;
  private resets = 0;

  constructor(options: VfioPciOptions) {
    this.topology = options.topology;
    this.fn = requireFunction(options.topology, options.bdf);
    if (this.fn.kind !== 'endpoint' && this.fn.kind !== 'rc-integrated-endpoint') {
      fail('EINVAL', `${options.bdf} is a ${this.fn.kind}: vfio-pci binds endpoints`);
    }
    this.metrics = options.metrics ?? new MetricsClass();
    this.command = options.command ?? PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  }

  get bdf(): Bdf {
    return this.fn.bdf;
  }

  /** __vfio_pci_memory_enabled: the virtual command register has MEMORY set and the device is in D0. */
  get memoryEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0 && this.power === 'D0';
  }

  get isOpen(): boolean {
    return this.opened;
  }

  get resetCount(): number {
    return this.resets;
  }

  get powerState(): PciPowerState {
    return this.power;
  }

  /** The exports still linked to this device (released buffers drop out). */
  get dmaBufs(): readonly VfioDmaBufExport[] {
    return this.exports.map((e) => ({ buf: e.buf, bar: e.bar, phys: e.phys, deviceAttached: e.attached }));
  }

  bar(index: number): PciBar {
    const bar = this.fn.bars.find((b) => b.index === index);
    if (bar === undefined) fail('EINVAL', `${this.bdf} has no BAR ${index}`);
    return bar;
  }

  // --- VFIO_DEVICE_FEATURE_DMA_BUF -------------------------------------------------------------

  exportDmaBuf(request: VfioDmaBufRequest): DmaBuf {
    this.requireOpen();
    const ranges = request.ranges;
    if (ranges.length === 0 || (request.flags ?? 0) !== 0) {
      fail(
        'EINVAL',
        `dma-buf request needs at least one range and no flags (got ${ranges.length}, flags ${request.flags ?? 0})`,
      );
    }
    if (
      !Number.isInteger(request.regionIndex) ||
      request.regionIndex < 0 ||
      request.regionIndex >= VFIO_PCI_ROM_REGION_INDEX
    ) {
      fail('ENODEV', `region ${request.regionIndex} of ${this.bdf} is not a BAR`);
    }
    // validate_dmabuf_input
    let total = 0n;
    ranges.forEach((r, i) => {
      if (r.length === 0n || !isAligned(r.offset, PAGE_SIZE) || !isAligned(r.length, PAGE_SIZE)) {
        fail(
          'EINVAL',
          `range ${i} (offset ${formatHex(r.offset)}, length ${formatHex(r.length)}) must be non-empty and page aligned`,
        );
      }
      total += r.length;
      if (total > U64_MAX) fail('EINVAL', `the ranges add up to more than 2^64 bytes`);
    });
    // dma_iova_try_alloc cannot take a size with bit 63 set (it is DMA_IOVA_USE_SWIOTLB).
    if ((total & DMA_IOVA_USE_SWIOTLB) !== 0n) {
      fail('EINVAL', `the ranges add up to ${formatHex(total)} bytes: 2^63 or more cannot be mapped`);
    }
    // vfio_pci_core_get_dmabuf_phys: the BAR must be memory with a p2pdma provider.
    const bar = this.fn.bars.find((b) => b.index === request.regionIndex);
    if (bar === undefined || bar.size === 0n || bar.io) {
      fail(
        'EINVAL',
        `BAR ${request.regionIndex} of ${this.bdf} is ${bar === undefined || bar.size === 0n ? 'not implemented' : 'an I/O BAR'}: no p2pdma provider`,
      );
    }
    const barEnd = bar.cpuAddress + bar.size;
    const phys = PhyrList.fromRanges(
      ranges.map((r, i) => {
        const paddr = bar.cpuAddress + r.offset;
        if (paddr > U64_MAX || paddr + r.length > U64_MAX + 1n) {
          fail('EOVERFLOW', `range ${i}: BAR ${request.regionIndex} start + offset + length overflows`);
        }
        if (paddr + r.length > barEnd) {
          fail(
            'EINVAL',
            `range ${i} (offset ${formatHex(r.offset)} + ${formatSize(r.length)}) runs past BAR ${request.regionIndex} (${formatSize(bar.size)})`,
          );
        }
        return { address: paddr, length: r.length };
      }),
    );
    // The release op needs the export record, which needs the buffer: link them through `ref`.
    const ref: { state?: ExportState } = {};
    const ops: DmaBufExporterOps = {
      name: 'vfio-pci',
      attach: (att: DmaBufAttachment) => {
        if (!att.peer2peer)
          fail('EOPNOTSUPP', `${att.device.name} must allow peer2peer to import ${this.bdf} BAR memory`);
        if (att.dmabuf.revoked) fail('ENODEV', `${att.dmabuf.describe()} is revoked: no new attachments`);
        if (!dmaBufAttachRevocable(att)) {
          fail(
            'EOPNOTSUPP',
            `${att.device.name} has no invalidate_mappings: a ${this.bdf} BAR export may be revoked at any time, so only revocable importers attach (dma_buf_attach_revocable)`,
          );
        }
      },
      map: () => phys,
      privatePhys: () => {
        if (phys.count !== 1)
          fail('EOPNOTSUPP', `iommufd takes single-range vfio dma-bufs; this one has ${phys.count}`);
        return phys;
      },
      release: () => {
        const i = ref.state === undefined ? -1 : this.exports.indexOf(ref.state);
        if (i >= 0) this.exports.splice(i, 1);
      },
    };
    const buf = dmaBufExport({
      ops,
      size: total,
      topology: this.topology,
      metrics: this.metrics,
      name: request.name ?? `${this.bdf} BAR${bar.index}`,
      revoked: !this.memoryEnabled,
    });
    ref.state = { buf, bar: bar.index, phys, attached: true };
    this.exports.push(ref.state);
    this.metrics.add('vfio.dmabuf_exports');
    return buf;
  }

  // --- config space, power, reset, close ----------------------------------------------------------

  configRead(offset: number): number {
    if (offset !== PCI_COMMAND)
      fail('EINVAL', `config offset ${formatHex(BigInt(offset))} is not modelled (only PCI_COMMAND)`);
    return this.command;
  }

  /** vfio_basic_config_write for PCI_COMMAND: revoke before memory goes off, restore once it is on. */
  configWrite(offset: number, value: number): VfioMoveReport {
    this.requireOpen();
    if (offset !== PCI_COMMAND)
      fail('EINVAL', `config offset ${formatHex(BigInt(offset))} is not modelled (only PCI_COMMAND)`);
    if (!Number.isInteger(value) || value < 0 || value > 0xffff)
      fail('EINVAL', `PCI_COMMAND value ${value} is not 16 bits`);
    const cause = `PCI_COMMAND write ${formatHex(BigInt(value))}`;
    const revoked = (value & PCI_COMMAND_MEMORY) === 0 ? this.revokeAll() : [];
    this.command = value;
    const restored = this.memoryEnabled ? this.restoreAll() : [];
    return { cause, revoked, restored };
  }

  /** vfio_lock_and_set_power_state. */
  setPowerState(state: PciPowerState): VfioMoveReport {
    this.requireOpen();
    const revoked = state === 'D3hot' ? this.revokeAll() : [];
    this.power = state;
    const restored = this.memoryEnabled ? this.restoreAll() : [];
    return { cause: `power state ${state}`, revoked, restored };
  }

  /**
   * VFIO_DEVICE_RESET (vfio_pci_core_ioctl_reset): to D0 first (vfio_pci_set_power_state), revoke,
   * reset the function, restore if memory is on.
   */
  reset(): VfioMoveReport {
    this.requireOpen();
    this.power = 'D0';
    const revoked = this.revokeAll();
    this.resets++;
    this.metrics.add('vfio.resets');
    const restored = this.memoryEnabled ? this.restoreAll() : [];
    return { cause: 'function reset', revoked, restored };
  }

  /**
   * vfio_pci_core_close_device → vfio_pci_dma_buf_cleanup: revoke every export for good, running
   * invalidate_mappings and the waits again on exports already revoked.
   */
  close(): VfioMoveReport {
    this.requireOpen();
    const revoked = this.revokeAll(true);
    for (const e of this.exports) e.attached = false;
    this.exports.length = 0;
    this.opened = false;
    return { cause: 'device close', revoked, restored: [] };
  }

  // --- BAR mmap ---------------------------------------------------------------------------------

  /** mmap of a whole memory BAR (or a page-aligned part): a PFN-mapped VMA description. */
  mmapBar(index: number, offset = 0n, length?: bigint): VfioBarMmap {
    this.requireOpen();
    const bar = this.bar(index);
    if (bar.io) fail('EINVAL', `BAR ${index} of ${this.bdf} is an I/O BAR: it cannot be mmapped`);
    const size = length ?? bar.size - offset;
    if (
      !isAligned(offset, PAGE_SIZE) ||
      size <= 0n ||
      offset + size > alignDown(bar.size + PAGE_SIZE - 1n, PAGE_SIZE)
    ) {
      fail(
        'EINVAL',
        `mmap of BAR ${index} at ${formatHex(offset)} + ${formatHex(size)} is outside it or unaligned`,
      );
    }
    return { bdf: this.bdf, bar: index, cpuAddress: bar.cpuAddress + offset, size, pfnmap: true };
  }

  /** A CPU access through the BAR mmap: SIGBUS (EFAULT) while memory is off or the device closed. */
  cpuAccess(mmap: VfioBarMmap): bigint {
    if (!this.opened || this.zapped || !this.memoryEnabled) {
      fail(
        'EFAULT',
        `CPU access to ${this.bdf} BAR ${mmap.bar} faults: memory decoding is off or the mapping was zapped`,
      );
    }
    return mmap.cpuAddress;
  }

  // --- internals --------------------------------------------------------------------------------

  /** vfio_pci_dma_buf_move(vdev, true) plus vfio_pci_zap_bars; `cleanup`: vfio_pci_dma_buf_cleanup. */
  private revokeAll(cleanup = false): { buf: string; report: RevokeReport }[] {
    this.zapped = true;
    const out: { buf: string; report: RevokeReport }[] = [];
    for (const e of this.live()) {
      if (e.buf.revoked && !cleanup) continue;
      out.push({ buf: e.buf.describe(), report: e.buf.revoke({ again: cleanup }) });
    }
    this.metrics.add('vfio.revokes', out.length);
    return out;
  }

  /** vfio_pci_dma_buf_move(vdev, false). */
  private restoreAll(): string[] {
    this.zapped = false;
    const out: string[] = [];
    for (const e of this.live()) {
      if (!e.buf.revoked) continue;
      e.buf.unrevoke();
      out.push(e.buf.describe());
    }
    return out;
  }

  /** get_file_active: exports whose buffer is still alive. */
  private live(): ExportState[] {
    return this.exports.filter((e) => !e.buf.released);
  }

  private requireOpen(): void {
    if (!this.opened) fail('ENODEV', `vfio device ${this.bdf} is closed`);
  }
}

/**
 * A GPU model: its large prefetchable BAR exposes device memory (VRAM) that peers can reach by
 * P2P DMA; the GPU itself reads and writes that memory locally (no DMA), and its copy engine can DMA
 * between VRAM and any DMA address (host memory or another peer).
 */
import { formatHex, PhysrError } from '../core/index.ts';
import { type Bdf, hostBridgeOf, type PciBar, requireFunction } from '../platform/index.ts';
import { DmaCapableDevice } from './device.ts';
import type { DmaAccessRecord, DmaFabric } from './routing.ts';

export class Gpu extends DmaCapableDevice {
  /** The BAR that exposes VRAM: the given index, else the largest memory BAR. */
  readonly vramBar: PciBar;

  constructor(fabric: DmaFabric, bdf: Bdf, options: { barIndex?: number; name?: string } = {}) {
    super(fabric, bdf, options.name);
    const bars = requireFunction(fabric.topology, bdf).bars.filter((b) => !b.io && b.size > 0n);
    const chosen =
      options.barIndex === undefined
        ? bars.reduce<PciBar | undefined>(
            (best, b) => (best === undefined || b.size > best.size ? b : best),
            undefined,
          )
        : bars.find((b) => b.index === options.barIndex);
    if (chosen === undefined)
      throw new PhysrError(
        'ENODEV',
        `${bdf} has no memory BAR${options.barIndex === undefined ? '' : ` ${options.barIndex}`}`,
      );
    this.vramBar = chosen;
  }

  get vramSize(): bigint {
    return this.vramBar.size;
  }

  /** CPU physical address of a VRAM offset (what a PhyrList of P2P memory holds). */
  vramCpuAddress(offset: bigint): bigint {
    this.checkVram(offset, 1n);
    return this.vramBar.cpuAddress + offset;
  }

  /** PCI bus address of a VRAM offset (pci_p2pdma_bus_addr_map: CPU address minus the bridge offset). */
  vramBusAddress(offset: bigint): bigint {
    return this.vramCpuAddress(offset) - hostBridgeOf(this.fabric.topology, this.bdf).busOffset;
  }

  /** The GPU's own view of its memory (no DMA). */
  readVram(offset: bigint, length: number): Uint8Array {
    this.checkVram(offset, BigInt(length));
    return this.fabric.bytes.read(this.vramBar.cpuAddress + offset, length);
  }

  writeVram(offset: bigint, bytes: Uint8Array): void {
    this.checkVram(offset, BigInt(bytes.length));
    this.fabric.bytes.write(this.vramBar.cpuAddress + offset, bytes);
  }

  /** Copy engine: VRAM → a DMA address. */
  copyOut(vramOffset: bigint, length: number, dmaAddress: bigint): DmaAccessRecord {
    return this.dmaWrite(dmaAddress, this.readVram(vramOffset, length));
  }

  /** Copy engine: a DMA address → VRAM. */
  copyIn(dmaAddress: bigint, length: number, vramOffset: bigint): void {
    this.checkVram(vramOffset, BigInt(length));
    this.writeVram(vramOffset, this.dmaRead(dmaAddress, length));
  }

  private checkVram(offset: bigint, length: bigint): void {
    if (offset < 0n || length < 0n || offset + length > this.vramBar.size)
      throw new PhysrError(
        'EINVAL',
        `${this.bdf}: VRAM offset ${formatHex(offset)} + ${length} is outside BAR${this.vramBar.index} (${formatHex(this.vramBar.size)} bytes)`,
      );
  }
}

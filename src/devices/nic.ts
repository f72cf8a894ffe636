/**
 * A NIC model: the driver posts receive buffers (DMA range lists, one per descriptor, as a ring);
 * on receive the NIC writes the packet across the next posted buffer by DMA. Transmit gathers a
 * buffer by DMA. No protocol: only where bytes go.
 */
import { type DmaRangeList, PhysrError } from '../core/index.ts';
import type { Bdf } from '../platform/index.ts';
import { DmaCapableDevice } from './device.ts';
import type { DmaAccessRecord, DmaFabric } from './routing.ts';

/** A deterministic packet body: every byte depends on the sequence number and its offset. */
export function packetPattern(sequence: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const seed = (sequence * 0x9e37) >>> 0;
  for (let i = 0; i < length; i++) out[i] = (seed + i * 31 + (i >>> 8) * 7 + (i >>> 16)) & 0xff;
  return out;
}

export interface Delivery {
  readonly buffer: DmaRangeList;
  readonly records: readonly DmaAccessRecord[];
}

export class Nic extends DmaCapableDevice {
  private readonly rxRing: DmaRangeList[] = [];
  /** Packets dropped because no buffer was posted (rx_missed_errors). */
  missed = 0;

  constructor(fabric: DmaFabric, bdf: Bdf, name?: string) {
    super(fabric, bdf, name);
  }

  /** Posts a receive buffer at the tail of the ring. */
  postReceive(buffer: DmaRangeList): void {
    if (buffer.isEmpty) throw new PhysrError('EINVAL', `${this.bdf}: an empty receive buffer`);
    this.rxRing.push(buffer);
  }

  get postedBuffers(): number {
    return this.rxRing.length;
  }

  /**
   * Receives one packet into the head buffer. EAGAIN (counted as missed) with no buffer posted;
   * EOVERFLOW when the packet is longer than the buffer (the buffer stays posted).
   */
  receive(packet: Uint8Array): Delivery {
    const buffer = this.rxRing[0];
    if (buffer === undefined) {
      this.missed++;
      this.fabric.metrics.add('devices.nic_rx_missed');
      throw new PhysrError('EAGAIN', `${this.bdf}: no receive buffer posted; packet dropped`);
    }
    const records = this.writeList(buffer, packet);
    this.rxRing.shift();
    this.fabric.metrics.add('devices.nic_rx_packets');
    return { buffer, records };
  }

  /** Transmits `length` bytes (default: all) gathered from a buffer. */
  transmit(buffer: DmaRangeList, length?: number): Uint8Array {
    const data = this.readList(buffer, length);
    this.fabric.metrics.add('devices.nic_tx_packets');
    return data;
  }
}

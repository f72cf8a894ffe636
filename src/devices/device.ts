/**
 * A PCI function that moves bytes by DMA. It knows only DMA addresses (what its driver programmed
 * into it); every access is routed by {@link routeDma} and so goes through the switch, the IOMMU or
 * the host bridge exactly as the fabric decides. Bytes that reach a target are counted as
 * COUNTER.dmaBytesRead/Written; a failed access throws {@link DmaAccessError} (the device saw an
 * aborted transaction: an IOMMU fault, an Unsupported Request or a master abort).
 */
import { COUNTER, type DmaRangeList, type Errno, formatHex, PhysrError } from '../core/index.ts';
import type { Bdf } from '../platform/index.ts';
import { type DmaAccessRecord, type DmaFabric, performDmaRead, performDmaWrite } from './routing.ts';

/** A failed device access, with the record of where each part of it went. */
export class DmaAccessError extends PhysrError {
  readonly record: DmaAccessRecord;

  constructor(errno: Errno, reason: string, record: DmaAccessRecord) {
    super(errno, reason);
    this.name = 'DmaAccessError';
    this.record = record;
  }
}

function raise(record: DmaAccessRecord): never {
  const f = record.fault!;
  throw new DmaAccessError(
    f.errno,
    `${record.requester} DMA ${record.access} of ${record.length} bytes at ${formatHex(record.dmaAddress)} failed after ${record.bytesMoved} bytes: ${f.reason}`,
    record,
  );
}

/** Largest gather a device model does in one go (the byte store's transfer limit). */
const MAX_LIST_TRANSFER = 1 << 30;

export class DmaCapableDevice {
  readonly fabric: DmaFabric;
  readonly bdf: Bdf;
  readonly name: string;
  /** The device's most recent accesses, oldest first (at most `logLimit`; `clearLog` empties it). */
  readonly log: DmaAccessRecord[] = [];
  /** How many records `log` keeps (older ones are dropped, so long runs stay bounded). */
  logLimit = 1024;

  constructor(fabric: DmaFabric, bdf: Bdf, name?: string) {
    this.fabric = fabric;
    this.bdf = bdf;
    this.name = name ?? fabric.topology.functions.get(bdf)?.name ?? bdf;
    if (!fabric.topology.functions.has(bdf)) throw new PhysrError('ENODEV', `no PCI function ${bdf}`);
  }

  /** A write that reports a failure in its record instead of throwing. */
  tryDmaWrite(dmaAddress: bigint, bytes: Uint8Array): DmaAccessRecord {
    const record = performDmaWrite(this.fabric, this.bdf, dmaAddress, bytes);
    this.fabric.metrics.add(COUNTER.dmaBytesWritten, record.bytesMoved);
    this.remember(record);
    return record;
  }

  tryDmaRead(dmaAddress: bigint, length: number): { record: DmaAccessRecord; data: Uint8Array } {
    const result = performDmaRead(this.fabric, this.bdf, dmaAddress, length);
    this.fabric.metrics.add(COUNTER.dmaBytesRead, result.record.bytesMoved);
    this.remember(result.record);
    return result;
  }

  /** Writes `bytes` at `dmaAddress`; throws DmaAccessError when any part fails. */
  dmaWrite(dmaAddress: bigint, bytes: Uint8Array): DmaAccessRecord {
    const record = this.tryDmaWrite(dmaAddress, bytes);
    if (record.fault !== undefined) raise(record);
    return record;
  }

  /** Reads `length` bytes at `dmaAddress`; throws DmaAccessError when any part fails. */
  dmaRead(dmaAddress: bigint, length: number): Uint8Array {
    const { record, data } = this.tryDmaRead(dmaAddress, length);
    if (record.fault !== undefined) raise(record);
    return data;
  }

  /**
   * Scatter: writes `bytes` across the list's ranges in order (the first bytes into the first range).
   * A buffer shorter than the list fills a prefix; a longer one is EOVERFLOW (nothing written).
   */
  writeList(list: DmaRangeList, bytes: Uint8Array): DmaAccessRecord[] {
    if (BigInt(bytes.length) > list.totalLength)
      throw new PhysrError(
        'EOVERFLOW',
        `${this.bdf}: ${bytes.length} bytes do not fit a DMA list of ${list.totalLength} bytes`,
      );
    const records: DmaAccessRecord[] = [];
    let offset = 0;
    for (let i = 0; i < list.count && offset < bytes.length; i++) {
      const take = Number(bigMin(list.lengthAt(i), BigInt(bytes.length - offset)));
      records.push(this.dmaWrite(list.addressAt(i), bytes.subarray(offset, offset + take)));
      offset += take;
    }
    return records;
  }

  /** Gather: reads `length` bytes (default: the whole list) from the list's ranges in order. */
  readList(list: DmaRangeList, length?: number): Uint8Array {
    const want = length ?? Number(list.totalLength);
    if (
      !Number.isSafeInteger(want) ||
      want < 0 ||
      want > MAX_LIST_TRANSFER ||
      BigInt(want) > list.totalLength
    )
      throw new PhysrError(
        'EINVAL',
        `${this.bdf}: cannot gather ${want} bytes from a DMA list of ${list.totalLength} bytes`,
      );
    const out = new Uint8Array(want);
    let offset = 0;
    for (let i = 0; i < list.count && offset < want; i++) {
      const take = Number(bigMin(list.lengthAt(i), BigInt(want - offset)));
      out.set(this.dmaRead(list.addressAt(i), take), offset);
      offset += take;
    }
    return out;
  }

  clearLog(): void {
    this.log.length = 0;
  }

  private remember(record: DmaAccessRecord): void {
    this.log.push(record);
    if (this.log.length > this.logLimit) this.log.splice(0, this.log.length - this.logLimit);
  }
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

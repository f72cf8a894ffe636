/**
 * A minimal exporter over a fixed `PhyrList` (host folios, a carve-out, or a BAR range): what a
 * driver with its own memory does, minus the driver. Optionally dynamic (it has pin/unpin) and then
 * movable: `move(list)` moves the backing store, refused with EBUSY while anyone holds a pin (the
 * dma-buf contract: pinned buffers stay put), and tells every importer through invalidate_mappings
 * (move_notify before 7.1).
 */
import { fail, formatSize, type Metrics, type PhyrList } from '../core/index.ts';
import type { PciTopology } from '../platform/index.ts';
import { type DmaBuf, type DmaBufAttachment, type DmaBufExporterOps, dmaBufExport } from './dma-buf.ts';

export interface PhyrExporterOptions {
  readonly name?: string;
  readonly topology: PciTopology;
  readonly metrics?: Metrics;
  /** With pin/unpin ops (dma_buf_is_dynamic); only dynamic exporters can move. Default false. */
  readonly dynamic?: boolean;
}

export class PhyrExporter {
  readonly buf: DmaBuf;
  private list: PhyrList;
  private pins = 0;
  readonly dynamic: boolean;

  constructor(list: PhyrList, options: PhyrExporterOptions) {
    if (list.isEmpty) fail('EINVAL', 'an exporter needs at least one range');
    this.list = list;
    this.dynamic = options.dynamic ?? false;
    const ops: DmaBufExporterOps = {
      name: options.name ?? 'phyr-exporter',
      map: () => this.list,
      privatePhys: () => this.list,
      ...(this.dynamic
        ? {
            pin: (_att: DmaBufAttachment) => {
              this.pins++;
            },
            unpin: (_att: DmaBufAttachment) => {
              this.pins--;
            },
          }
        : {}),
    };
    this.buf = dmaBufExport({
      ops,
      size: list.totalLength,
      topology: options.topology,
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    });
  }

  get ranges(): PhyrList {
    return this.list;
  }

  /** Pins held on the exporter (explicit dynamic pins plus static importers' implicit ones). */
  get pinCount(): number {
    return this.pins;
  }

  /** Move the backing store to `list` (same size). EBUSY while pinned; EINVAL for a static exporter. */
  move(list: PhyrList): string[] {
    if (!this.dynamic) fail('EINVAL', `${this.buf.describe()} is not a dynamic exporter: it cannot move`);
    if (list.totalLength !== this.buf.size) {
      fail(
        'EINVAL',
        `new backing is ${formatSize(list.totalLength)}, the buffer is ${formatSize(this.buf.size)}`,
      );
    }
    if (this.pins > 0) fail('EBUSY', `${this.buf.describe()} is pinned ${this.pins} time(s): it cannot move`);
    this.list = list;
    return this.buf.invalidateMappings();
  }
}

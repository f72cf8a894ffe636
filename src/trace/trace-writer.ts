/**
 * The model's own DMA activity as trace text in the current (6.18+) print formats of
 * include/trace/events/dma.h and iommu.h, so `physr trace` (or any tool reading tracefs text) can
 * read a run back. Lines carry a made-up task (`physr-1`, CPU 0) and a clock that advances one
 * microsecond an event.
 */
import type { DmaTraceRecord, DmaTraceSink } from '../core/index.ts';
import { DMA_TRACE_MAX_ENTRIES } from './replay.ts';

function hexArray(values: readonly bigint[]): string {
  let s = '{';
  for (let i = 0; i < values.length; i++) s += `${i === 0 ? '' : ','}0x${values[i]!.toString(16)}`;
  return `${s}}`;
}

function hex16(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

/** The event name and body the kernel prints for a record. */
export function formatTraceRecord(r: DmaTraceRecord): string {
  switch (r.kind) {
    case 'map_phys':
      return `dma_map_phys: ${r.device} dir=${r.dir} dma_addr=${r.dma.toString(16)} size=${r.size} phys_addr=${r.phys.toString(16)} attrs=${r.mmio ? 'MMIO' : ''}`;
    case 'unmap_phys':
      return `dma_unmap_phys: ${r.device} dir=${r.dir} dma_addr=${r.dma.toString(16)} size=${r.size} attrs=`;
    case 'map_sg': {
      const n = r.phys.length;
      const e = r.dma.length;
      const shownN = Math.min(n, DMA_TRACE_MAX_ENTRIES);
      const shownE = Math.min(e, DMA_TRACE_MAX_ENTRIES);
      const truncated = n > DMA_TRACE_MAX_ENTRIES || e > DMA_TRACE_MAX_ENTRIES;
      return `dma_map_sg: ${r.device} dir=${r.dir} nents=${shownN}/${n} ents=${shownE}/${e}${truncated ? ' [TRUNCATED]' : ''} dma_addrs=${hexArray(r.dma.slice(0, shownE))} sizes=${hexArray(r.lengths.slice(0, shownE))} phys_addrs=${hexArray(r.phys.slice(0, shownN))} attrs=`;
    }
    case 'unmap_sg':
      return `dma_unmap_sg: ${r.device} dir=${r.dir} phys_addrs=${hexArray(r.phys)} attrs=`;
    case 'sync_single':
      return `dma_sync_single_for_${r.toCpu ? 'cpu' : 'device'}: ${r.device} dir=${r.dir} dma_addr=${r.dma.toString(16)} size=${r.size}`;
    case 'sync_sg':
      return `dma_sync_sg_for_${r.toCpu ? 'cpu' : 'device'}: ${r.device} dir=${r.dir} dma_addrs=${hexArray(r.dma)} sizes=${hexArray(r.lengths)}`;
    case 'iommu_map':
      return `map: IOMMU: iova=${hex16(r.iova)} - ${hex16(BigInt.asUintN(64, r.iova + r.size))} paddr=${hex16(r.paddr)} size=${r.size}`;
    case 'iommu_unmap':
      return `unmap: IOMMU: iova=${hex16(r.iova)} - ${hex16(BigInt.asUintN(64, r.iova + r.size))} size=${r.size} unmapped_size=${r.unmapped}`;
    case 'io_page_fault':
      return `io_page_fault: IOMMU:${r.driver} ${r.device} iova=${hex16(r.iova)} flags=0x0000`;
  }
}

export interface TraceWriter {
  /** Give this to `metrics.traceSink`. */
  readonly sink: DmaTraceSink;
  /** A `#` comment line (readers skip it), e.g. naming the scenario that follows. */
  comment(text: string): void;
  /** Every line so far, with the tracefs header. */
  text(): string;
}

export function createTraceWriter(): TraceWriter {
  const lines: string[] = [
    '# tracer: nop',
    '#',
    '# written by physr run --trace-out (Linux 6.18+ print formats)',
    '#',
  ];
  let clockUs = 1_000_000;
  return {
    sink: (r) => {
      const t = clockUs++;
      const time = `${Math.floor(t / 1e6)}.${String(t % 1e6).padStart(6, '0')}`;
      lines.push(`           physr-1       [000] .....  ${time.padStart(12)}: ${formatTraceRecord(r)}`);
    },
    comment: (text) => lines.push(`# ${text}`),
    text: () => `${lines.join('\n')}\n`,
  };
}

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { metricsDelta, type PhyrList, SZ_4K } from '../../src/core/index.ts';
import {
  builtinMachine,
  type DmaDevice,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
} from '../../src/dma/index.ts';
import { propertyRuns } from '../thorough.ts';
import { folioList } from './helpers.ts';

const NIC = '0000:04:00.0';
const RUNS = propertyRuns(12, 100);
/** Counters only the mapping record adds (the handle, its DmaRangeList, dma-debug). */
const RECORD_ONLY = new Set(['dma.maps', 'dma.unmaps', 'core.physr_metadata_bytes', 'dma.physr_dma_ranges']);

/** A machine with its free lists scattered (so folios are not handed out in address order). */
function machineFor(seed: number): DmaDevice {
  const m = builtinMachine('two-socket-server', { platform: { seed } });
  const dev = m.device(NIC, { maxSegmentSize: 0xffff_f000n });
  m.platform.folios.fragment(5, { fraction: 0.4 });
  return dev;
}

// Two identical machines kept in lockstep across runs: every run does the same to both.
let pair: { readonly bulk: DmaDevice; readonly ref: DmaDevice } | undefined;
function setup(orders: readonly number[]): {
  bulk: { dev: DmaDevice; list: PhyrList };
  ref: { dev: DmaDevice; list: PhyrList };
} {
  pair ??= { bulk: machineFor(7), ref: machineFor(7) };
  return {
    bulk: { dev: pair.bulk, list: folioList(pair.bulk, orders) },
    ref: { dev: pair.ref, list: folioList(pair.ref, orders) },
  };
}

function tableWords(dev: DmaDevice): (readonly [number, bigint, bigint])[] {
  return [...dev.domain!.pageTable!.entries()];
}

function withoutRecord(delta: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(delta).filter(([k]) => !RECORD_ONLY.has(k)));
}

describe('the physr IOVA path links a whole list with one bulk page-table call', () => {
  test.prop([fc.array(fc.constantFrom(0, 0, 1, 2, 4, 9), { minLength: 1, maxLength: 16 })], {
    numRuns: RUNS,
  })(
    'same PTE words, counters and IOVA as dma_iova_link range by range; every 4K page translates the same',
    (orders) => {
      const { bulk, ref } = setup(orders);
      expect(bulk.list.equals(ref.list)).toBe(true);

      const before = bulk.dev.machine.metrics.snapshot();
      const mapping = bulk.dev.map(bulk.list, 'BIDIRECTIONAL');
      const bulkDelta = withoutRecord(metricsDelta(before, bulk.dev.machine.metrics.snapshot()));

      // The reference: try_alloc, one dma_iova_link per range, one sync (include/linux/dma-mapping.h).
      const refBefore = ref.dev.machine.metrics.snapshot();
      const state = dmaIovaTryAlloc(ref.dev, ref.list.addressAt(0), ref.list.totalLength)!;
      let offset = 0n;
      for (const r of ref.list) {
        dmaIovaLink(ref.dev, state, r.address, offset, r.length, 'BIDIRECTIONAL');
        offset += r.length;
      }
      dmaIovaSync(ref.dev, state, 0n, offset);
      const refDelta = withoutRecord(metricsDelta(refBefore, ref.dev.machine.metrics.snapshot()));

      expect(mapping.path).toBe('iova');
      expect(mapping.pieces.length).toBe(1);
      expect(mapping.segments[0]!.phys).toBe(bulk.list);
      expect(mapping.dma.addressAt(0)).toBe(state.addr);
      expect(tableWords(bulk.dev)).toEqual(tableWords(ref.dev));
      expect(bulkDelta).toEqual(refDelta);
      const bulkDomain = bulk.dev.domain!;
      const refDomain = ref.dev.domain!;
      for (let va = state.allocStart; va < state.allocStart + state.allocSize; va += SZ_4K) {
        expect(bulkDomain.iovaToPhys(va)).toBe(refDomain.iovaToPhys(va));
      }

      const beforeUnmap = bulk.dev.machine.metrics.snapshot();
      bulk.dev.unmap(mapping);
      const refBeforeUnmap = ref.dev.machine.metrics.snapshot();
      dmaIovaDestroy(ref.dev, state, offset, 'BIDIRECTIONAL');
      expect(withoutRecord(metricsDelta(beforeUnmap, bulk.dev.machine.metrics.snapshot()))).toEqual(
        withoutRecord(metricsDelta(refBeforeUnmap, ref.dev.machine.metrics.snapshot())),
      );
      expect(tableWords(bulk.dev)).toEqual(tableWords(ref.dev));
    },
  );
});

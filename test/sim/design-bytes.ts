/**
 * Test helper: do the designs move the same bytes to the same places? For each design that ran, the
 * device's view through its DMA ranges must read the source bytes, and — unless the design bounced
 * through swiotlb — every DMA byte must land on the same physical byte as the source list says.
 */
import { expect } from 'vitest';
import { PhyrListBuilder } from '../../src/core/index.ts';
import type { DesignMapInput, DesignRun } from '../../src/sim/designs.ts';
import { deviceBytes, dmaToPhys, sameBytes } from '../dma/helpers.ts';

/** Where each DMA byte of a run lands, as merged physical ranges (4 KiB steps through the IOMMU). */
export function landingOf(run: DesignRun) {
  const out = new PhyrListBuilder({ merge: true });
  run.dma!.forEachRange((address, length) => {
    let done = 0n;
    while (done < length) {
      const a = address + done;
      const toPage = 0x1000n - (a & 0xfffn);
      const take = toPage < length - done ? toPage : length - done;
      out.append(dmaToPhys(run.device, a), take);
      done += take;
    }
  });
  return out.build();
}

/** Asserts (once per design) that the designs that ran read the same bytes from the same places. */
export function expectSameBytesSamePlaces(input: DesignMapInput, runs: readonly DesignRun[]): void {
  const source = new PhyrListBuilder({ merge: true });
  input.source.forEachRange((a, l) => source.append(a, l));
  const want = source.build().toArray();
  for (const run of runs) {
    if (run.dma === undefined) continue;
    const bytesOk = sameBytes(deviceBytes(run.device, run.dma), input.bytes);
    expect(bytesOk, `${run.design}: the device reads other bytes`).toBe(true);
    const bounced = run.machine.metrics.get('dma.bounce_bytes') > 0;
    if (!bounced) expect(landingOf(run).toArray(), `${run.design}: bytes land elsewhere`).toEqual(want);
  }
}

/**
 * Test helper: do the designs move the same bytes to the same places? For each design that ran, walk
 * its DMA ranges as the device would (4 KiB steps through its IOMMU, with the access its direction
 * allows): the bytes found there must be the source bytes, and — unless the design bounced through
 * swiotlb — every DMA byte must land on the physical byte the source list names.
 */
import { expect } from 'vitest';
import { type PhyrList, PhyrListBuilder } from '../../src/core/index.ts';
import type { DesignMapInput, DesignRun } from '../../src/sim/designs.ts';
import { dmaToPhys, sameBytes } from '../dma/helpers.ts';

/** Where each DMA byte of a run lands (merged physical ranges) and, when `withBytes`, the bytes there. */
export function landingOf(
  run: DesignRun,
  access: 'read' | 'write',
  withBytes = true,
): { places: PhyrList; bytes: Uint8Array } {
  const out = new PhyrListBuilder({ merge: true });
  const store = run.machine.platform.bytes;
  const bytes = new Uint8Array(withBytes ? Number(run.dma!.totalLength) : 0);
  let at = 0;
  run.dma!.forEachRange((address, length) => {
    let done = 0n;
    while (done < length) {
      const a = address + done;
      const toPage = 0x1000n - (a & 0xfffn);
      const take = toPage < length - done ? toPage : length - done;
      const phys = dmaToPhys(run.device, a, access);
      out.append(phys, take);
      if (withBytes) bytes.set(store.read(phys, Number(take)), at);
      at += Number(take);
      done += take;
    }
  });
  return { places: out.build(), bytes };
}

/** Asserts (once per design) that the designs that ran reach the same bytes in the same places. */
export function expectSameBytesSamePlaces(input: DesignMapInput, runs: readonly DesignRun[]): void {
  const source = new PhyrListBuilder({ merge: true });
  input.source.forEachRange((a, l) => source.append(a, l));
  const want = source.build().toArray();
  const access = input.dir === 'FROM_DEVICE' ? 'write' : 'read';
  for (const run of runs) {
    if (run.dma === undefined) continue;
    const landing = landingOf(run, access, input.bytes !== undefined);
    if (input.bytes !== undefined) {
      expect(sameBytes(landing.bytes, input.bytes), `${run.design}: the device reaches other bytes`).toBe(
        true,
      );
    }
    const bounced = run.machine.metrics.get('dma.bounce_bytes') > 0;
    if (!bounced) expect(landing.places.toArray(), `${run.design}: bytes land elsewhere`).toEqual(want);
  }
}

/**
 * swiotlb's pool checks and free-slot bookkeeping (kernel/dma/swiotlb.c, Linux 7.1): a pool is page
 * aligned and whole slots; freeing slots joins the free run that follows inside the segment
 * (swiotlb_release_slots), so a whole segment fits again however the frees were ordered, and no
 * mapping ever crosses a 128-slot segment.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, Metrics } from '../../src/core/index.ts';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, Swiotlb, type SwiotlbBounce } from '../../src/dma/index.ts';
import { ByteStore } from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';
import { propertyRuns } from '../thorough.ts';

const POOL = 0x1000_0000n;
const ORIG = 0x5000_0000n;
const SEGMENT = BigInt(IO_TLB_SEGSIZE) * IO_TLB_SIZE; // 256 KiB

function pool(slots: number, nareas = 1): Swiotlb {
  return new Swiotlb(POOL, BigInt(slots) * IO_TLB_SIZE, new ByteStore(), new Metrics(), { nareas });
}

describe('swiotlb pool checks (swiotlb_init_io_tlb_pool)', () => {
  it('refuses a pool that is not page aligned, empty, or not whole 2 KiB slots (EINVAL)', () => {
    const make = (start: bigint, size: bigint) => () =>
      new Swiotlb(start, size, new ByteStore(), new Metrics());
    expectErrno(make(POOL + 0x800n, SEGMENT), 'EINVAL', /page aligned and whole slots/);
    expectErrno(make(POOL, 0n), 'EINVAL', /0x0/);
    expectErrno(make(POOL, SEGMENT + 0x400n), 'EINVAL', /whole slots/);
    const ok = new Swiotlb(POOL, SEGMENT, new ByteStore(), new Metrics());
    expect(ok.nslabs).toBe(128);
  });
});

describe('swiotlb_release_slots: freed slots join the free run after them', () => {
  it('a whole segment fits again after small mappings are freed in any order', () => {
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [1, 0, 2],
      [1, 2, 0],
    ]) {
      const tlb = pool(128);
      // Three page mappings: slots 0-1, 2-3, 4-5.
      const live = [0, 1, 2].map(() => tlb.map(ORIG, 0x1000n));
      expect(live.map((b) => b.index)).toEqual([0, 2, 4]);
      for (const i of order) tlb.unmap(live[i]!, 'TO_DEVICE', true);
      expect(tlb.usedSlots).toBe(0);
      const whole = tlb.map(ORIG, SEGMENT);
      expect(whole.index).toBe(0);
      expect(whole.slots).toBe(128);
    }
  });

  it("a run freed up to its segment's end does not count the next segment's free slots", () => {
    const tlb = pool(256);
    const first = tlb.map(ORIG, SEGMENT);
    expect(first.index).toBe(0);
    tlb.unmap(first, 'TO_DEVICE', true);
    // 129 slots would need segments 0 and 1 together: still "buffer is full".
    expectErrno(() => tlb.map(ORIG, SEGMENT + IO_TLB_SIZE), 'ENOMEM');
    // The tail of segment 0 freed while its head stays mapped: the head does not grow past slot 127.
    const head = tlb.map(ORIG, 0x1000n);
    const tail = tlb.map(ORIG, SEGMENT - 0x1000n);
    expect([head.index, tail.index]).toEqual([128, 130]);
    tlb.unmap(tail, 'TO_DEVICE', true);
    const again = tlb.map(ORIG, SEGMENT - 0x1000n);
    expect(again.index).toBe(0);
    expect(again.index + again.slots <= IO_TLB_SEGSIZE).toBe(true);
  });

  it('a run freed up to the end of its segment from mid-segment stops there too', () => {
    const tlb = pool(256);
    const head = tlb.map(ORIG, SEGMENT / 2n); // slots 0-63
    const tail = tlb.map(ORIG, SEGMENT / 2n); // slots 64-127
    expect([head.index, tail.index]).toEqual([0, 64]);
    tlb.unmap(tail, 'TO_DEVICE', true);
    // A whole-segment mapping goes to segment 1 and wraps the next-fit index back to slot 0.
    const whole = tlb.map(ORIG, SEGMENT);
    expect(whole.index).toBe(128);
    tlb.unmap(whole, 'TO_DEVICE', true);
    // Slots 64-127 are free and so is all of segment 1, but 100 slots at 64 would cross into it.
    expect(tlb.map(ORIG, 100n * IO_TLB_SIZE).index).toBe(128);
  });

  it('an area whose slots are in use refuses a mapping larger than its free count', () => {
    // Two areas of 128 slots; filling area 0 then freeing a page leaves it 2 free slots.
    const tlb = pool(256, 2);
    const a = tlb.map(ORIG, SEGMENT, { cpu: 0 });
    tlb.unmap(a, 'TO_DEVICE', true);
    const b = tlb.map(ORIG, SEGMENT - 0x1000n, { cpu: 0 });
    expect(b.index).toBe(0);
    // A 3-page mapping does not fit area 0's last 2 slots: it goes to area 1.
    expect(tlb.map(ORIG, 0x3000n, { cpu: 0 }).index).toBe(128);
    expect(tlb.map(ORIG, 0x1000n, { cpu: 0 }).index).toBe(126);
  });

  /**
   * Reference: a map of n slots succeeds exactly when some candidate slot (every slot for a mapping
   * under a page, every even slot, i.e. page aligned, for a page or more) starts n free slots inside
   * one segment; the pool has one area, so the next-fit walk visits every candidate.
   */
  test.prop(
    [
      fc.array(fc.tuple(fc.integer({ min: 1, max: Number(SEGMENT) }), fc.nat({ max: 99 }), fc.boolean()), {
        maxLength: 40,
      }),
    ],
    { numRuns: propertyRuns(40, 400) },
  )('map succeeds exactly when a free aligned run fits inside one segment', (ops) => {
    const slots = 256;
    const tlb = pool(slots);
    const used = new Uint8Array(slots);
    const live: SwiotlbBounce[] = [];
    for (const [size, pick, free] of ops) {
      if (free && live.length > 0) {
        const [b] = live.splice(pick % live.length, 1);
        tlb.unmap(b!, 'TO_DEVICE', true);
        used.fill(0, b!.index, b!.index + b!.slots);
        continue;
      }
      const n = Math.ceil(size / Number(IO_TLB_SIZE));
      const step = size >= 0x1000 ? 2 : 1;
      let fits = false;
      for (let s = 0; s + n <= slots && !fits; s += step) {
        const sameSegment = Math.floor(s / IO_TLB_SEGSIZE) === Math.floor((s + n - 1) / IO_TLB_SEGSIZE);
        fits = sameSegment && used.subarray(s, s + n).every((u) => u === 0);
      }
      let b: SwiotlbBounce | undefined;
      try {
        b = tlb.map(ORIG, BigInt(size));
      } catch (error) {
        if (!isPhysrError(error, 'ENOMEM')) throw error;
      }
      expect(b !== undefined).toBe(fits);
      if (b === undefined) continue;
      expect(b.slots).toBe(n);
      expect(b.index % step).toBe(0);
      expect(used.subarray(b.index, b.index + n).every((u) => u === 0)).toBe(true);
      used.fill(1, b.index, b.index + n);
      live.push(b);
    }
    expect(tlb.usedSlots).toBe(used.reduce((a, u) => a + u, 0));
  });
});

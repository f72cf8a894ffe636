/**
 * The counters every layer adds to (only touched ones appear in a snapshot, sorted; a delta keeps
 * the moved ones) and the `struct page **` array model written through 32-bit halves.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, fillPageArray, Metrics, metricsDelta, pageArrayReader } from '../../src/core/index.ts';

describe('Metrics', () => {
  test('add counts up by one or by a step; get reads 0 for a counter never seen', () => {
    const m = new Metrics();
    expect(m.get(COUNTER.dmaMaps)).toBe(0);
    m.add(COUNTER.dmaMaps);
    m.add(COUNTER.dmaMaps, 4);
    m.add(COUNTER.bounceBytes, 4096);
    expect(m.get(COUNTER.dmaMaps)).toBe(5);
    expect(m.get(COUNTER.bounceBytes)).toBe(4096);
  });

  test('a snapshot holds the touched counters in name order, not the untouched cells', () => {
    const m = new Metrics();
    m.add('zeta.last', 2);
    m.counter('mid.untouched');
    m.add('alpha.first', 0);
    const snap = m.snapshot();
    expect(snap).toEqual({ 'alpha.first': 0, 'zeta.last': 2 });
    expect(Object.keys(snap)).toEqual(['alpha.first', 'zeta.last']);
  });

  test('a hot-path cell is the same cell add() uses, and reset zeroes it without dropping it', () => {
    const m = new Metrics();
    const cell = m.counter(COUNTER.pteWrites);
    expect(m.counter(COUNTER.pteWrites)).toBe(cell);
    m.add(COUNTER.pteWrites, 3);
    expect(cell).toEqual({ value: 3, touched: true });
    m.reset();
    expect(cell).toEqual({ value: 0, touched: false });
    expect(m.snapshot()).toEqual({});
    m.add(COUNTER.pteWrites);
    expect(m.get(COUNTER.pteWrites)).toBe(1);
  });

  test('metricsDelta keeps what moved, counting a new counter from 0', () => {
    expect(
      metricsDelta({ 'a.x': 5, 'a.same': 2 }, { 'a.x': 8, 'a.same': 2, 'a.new': 4, 'a.zero': 0 }),
    ).toEqual({
      'a.x': 3,
      'a.new': 4,
    });
    expect(metricsDelta({ 'a.x': 5 }, { 'a.x': 1 })).toEqual({ 'a.x': -4 });
  });
});

describe('page array', () => {
  test('fillPageArray writes consecutive frames from an index; the rest stays untouched', () => {
    const pages = new BigUint64Array(6).fill(0xdeadn);
    fillPageArray(pages, 2, 0x1234, 3);
    expect([...pages]).toEqual([0xdeadn, 0xdeadn, 0x1234n, 0x1235n, 0x1236n, 0xdeadn]);
    fillPageArray(pages, 0, 7, 0);
    expect(pages[0]).toBe(0xdeadn);
  });

  test('frames above 2^32 keep their high half, also when the low half wraps', () => {
    const pages = new BigUint64Array(4);
    const pfn = 2 ** 40 + 0xffff_fffe; // low half wraps between the 2nd and 3rd frame
    fillPageArray(pages, 1, pfn, 3);
    expect([...pages]).toEqual([0n, BigInt(pfn), BigInt(pfn) + 1n, BigInt(pfn) + 2n]);
    const read = pageArrayReader(pages);
    expect([read(0), read(1), read(2), read(3)]).toEqual([0, pfn, pfn + 1, pfn + 2]);
  });

  test('the reader sees entries written as bigints, on a view with a byte offset', () => {
    const backing = new BigUint64Array([9n, 0x5_0000_0003n, 0xffff_ffffn]);
    const view = backing.subarray(1);
    const read = pageArrayReader(view);
    expect([read(0), read(1)]).toEqual([0x5_0000_0003, 0xffff_ffff]);
    fillPageArray(view, 0, 0x7_0000_0000, 1);
    expect(backing[1]).toBe(0x7_0000_0000n);
    expect(backing[0]).toBe(9n);
  });
});

import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import type { ByteSource } from '../../src/platform/index.ts';
import { propertyRuns } from '../thorough.ts';
import { GiB, machine } from './helpers.ts';

/** Byte at offset o is (o * 13 + 5) & 0xff: an independent reference for what must be read back. */
const source: ByteSource = {
  fillInto: (offset, out) => {
    for (let i = 0; i < out.length; i++) out[i] = Number(((offset + BigInt(i)) * 13n + 5n) & 0xffn);
  },
};
const expected = (offset: bigint, length: number) =>
  Array.from({ length }, (_, i) => Number(((offset + BigInt(i)) * 13n + 5n) & 0xffn));

describe('writeUserSource: a described copy_to_user', () => {
  test('4 GiB over THP costs a described extent per folio and no 4K chunks; reads give the bytes', () => {
    const { mm, bytes } = machine({ ramGiB: 6, anonOrders: [9] });
    const length = 4n * GiB;
    const va = mm.mmap({ kind: 'anon', length });
    mm.writeUserSource(va, length, source, 0n);
    // 2048 THP folios from the buddy; physically contiguous ones stay separate extents at most.
    expect(bytes.residentChunks).toBe(0);
    expect(bytes.describedExtents).toBeLessThanOrEqual(2048);
    for (const offset of [0n, 0x1ff_fffen, 0xffff_fff0n]) {
      expect([...mm.readUser(va + offset, 16)]).toEqual(expected(offset, 16));
    }
    expect(bytes.residentChunks).toBe(0);
  });

  test.prop(
    [fc.bigInt({ min: 0n, max: 0x30_0000n }), fc.integer({ min: 0, max: 0x1_0000 }), fc.nat(0x4000)],
    {
      numRuns: propertyRuns(25),
    },
  )('an unaligned write among byte writes reads back as the reference says', (offset, length, poke) => {
    const { mm, bytes } = machine({ ramGiB: 1, anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x40_0000n });
    mm.writeUser(va + offset + BigInt(poke), Uint8Array.of(0xee));
    mm.writeUserSource(va + offset, BigInt(length), source, offset);
    const got = mm.readUser(va + offset, length);
    expect([...got]).toEqual(expected(offset, length));
    // Only the edge chunks of each physically contiguous piece may be real bytes.
    expect(bytes.residentChunks).toBeLessThanOrEqual(2 * bytes.describedExtents + 1);
  });
});

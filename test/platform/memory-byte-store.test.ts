import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, U64_MAX } from '../../src/core/index.ts';
import { type ByteSource, ByteStore } from '../../src/platform/index.ts';
import { propertyRuns } from '../thorough.ts';

describe('ByteStore', () => {
  it('reads zeros from never-written memory and costs nothing for a 4 TiB span', () => {
    const store = new ByteStore();
    expect(store.read(0x400_0000_0000n, 64)).toEqual(new Uint8Array(64));
    expect(store.residentBytes).toBe(0);
    store.write(0x3ff_ffff_fffen, Uint8Array.of(1, 2, 3, 4)); // crosses a page boundary
    expect(store.residentBytes).toBe(8192);
    expect([...store.read(0x3ff_ffff_fffdn, 6)]).toEqual([0, 1, 2, 3, 4, 0]);
  });

  it('works at the very top of the 64-bit space and refuses to wrap', () => {
    const store = new ByteStore();
    store.write(U64_MAX - 1n, Uint8Array.of(0xaa, 0xbb));
    expect([...store.read(U64_MAX - 2n, 3)]).toEqual([0, 0xaa, 0xbb]);
    expect(() => store.write(U64_MAX, Uint8Array.of(1, 2))).toThrow(/past the end/);
    expect(() => store.read(U64_MAX + 1n, 1)).toThrow(
      /EINVAL: read address 0x1_?0000_?0000_?0000_?0000 is outside/,
    );
    try {
      store.read(-1n, 1);
    } catch (e) {
      expect(isPhysrError(e, 'EINVAL')).toBe(true);
    }
  });

  it('copies with memmove semantics in both overlap directions', () => {
    const store = new ByteStore();
    const data = Uint8Array.from({ length: 10000 }, (_, i) => (i * 7 + 3) & 0xff);
    store.write(0x10_0ff0n, data);
    store.copy(0x10_0ff0n, 0x10_1000n, 10000); // forward overlap: destination above source
    expect(store.read(0x10_1000n, 10000)).toEqual(data);
    store.write(0x20_0000n, data);
    store.copy(0x20_0000n, 0x1f_f800n, 10000); // destination below source
    expect(store.read(0x1f_f800n, 10000)).toEqual(data);
  });

  it('a fill is one described extent; zeros over part of it make only the edge chunks real', () => {
    const store = new ByteStore();
    store.fill(0x1000n, 3 * 4096, 0x5a);
    expect(store.residentChunks).toBe(0);
    expect(store.describedExtents).toBe(1);
    store.fill(0x1800n, 4096 * 2, 0);
    expect(store.residentChunks).toBe(2); // the half-zeroed edge chunks; the middle one is nothing
    expect(store.describedExtents).toBe(2);
    expect([...store.read(0x17ffn, 2)]).toEqual([0x5a, 0]);
    expect([...store.read(0x37ffn, 2)]).toEqual([0, 0x5a]);
  });
});

type Op =
  | { kind: 'write'; addr: bigint; bytes: Uint8Array }
  | { kind: 'copy'; from: bigint; to: bigint; length: number }
  | { kind: 'fill'; addr: bigint; length: number; value: number }
  | { kind: 'source'; addr: bigint; length: number; sourceOffset: bigint; salt: number };

/** A described source for the reference: byte at offset o is (o * 7 + salt) & 0xff. */
function saltedSource(salt: number): ByteSource {
  return {
    fillInto: (offset, out) => {
      for (let i = 0; i < out.length; i++) out[i] = Number((offset + BigInt(i)) * 7n + BigInt(salt)) & 0xff;
    },
  };
}

/** Addresses in a few small windows (so ops collide), one of them just below 2^64. */
const addrArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 0x3000n }),
  fc.bigInt({ min: 0xffff_ffff_0000_0000n, max: 0xffff_ffff_0000_3000n }),
  fc.bigInt({ min: U64_MAX - 0x3000n, max: U64_MAX - 0x2100n }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    addr: addrArb,
    bytes: fc.uint8Array({ minLength: 0, maxLength: 2500 }),
  }),
  fc.record({ kind: fc.constant('copy' as const), from: addrArb, to: addrArb, length: fc.nat(2500) }),
  fc.record({ kind: fc.constant('fill' as const), addr: addrArb, length: fc.nat(3000), value: fc.nat(255) }),
  fc.record({
    kind: fc.constant('source' as const),
    addr: addrArb,
    length: fc.nat(3 * 4096),
    sourceOffset: fc.bigInt({ min: 0n, max: 1n << 40n }),
    salt: fc.nat(255),
  }),
);

describe('ByteStore against a Map reference', () => {
  test.prop(
    [fc.array(opArb, { maxLength: 25 }), fc.array(fc.tuple(addrArb, fc.nat(3000)), { maxLength: 10 })],
    { numRuns: propertyRuns(60) },
  )('random writes, copies and fills read back as a byte map says', (ops, reads) => {
    const store = new ByteStore();
    const ref = new Map<bigint, number>();
    const refGet = (a: bigint): number => ref.get(a) ?? 0;
    /** Chunks byte writes and copies may make real, plus the two edge chunks of each described write. */
    const mayBeReal = new Set<bigint>();
    let edgeChunks = 0;
    const span = (addr: bigint, length: number) => {
      for (let c = addr >> 12n; length > 0 && c <= (addr + BigInt(length) - 1n) >> 12n; c++) mayBeReal.add(c);
    };
    for (const op of ops) {
      if (op.kind === 'source') {
        if (op.addr + BigInt(op.length) - 1n > U64_MAX) continue;
        store.writeSource(op.addr, BigInt(op.length), saltedSource(op.salt), op.sourceOffset);
        const bytes = new Uint8Array(op.length);
        saltedSource(op.salt).fillInto(op.sourceOffset, bytes);
        for (const [i, b] of bytes.entries()) ref.set(op.addr + BigInt(i), b);
        edgeChunks += 2;
      } else if (op.kind === 'write') {
        span(op.addr, op.bytes.length);
        store.write(op.addr, op.bytes);
        for (const [i, b] of op.bytes.entries()) ref.set(op.addr + BigInt(i), b);
      } else if (op.kind === 'copy') {
        span(op.to, op.length);
        store.copy(op.from, op.to, op.length);
        const snapshot = Array.from({ length: op.length }, (_, i) => refGet(op.from + BigInt(i)));
        for (const [i, b] of snapshot.entries()) ref.set(op.to + BigInt(i), b);
      } else {
        edgeChunks += 2;
        store.fill(op.addr, op.length, op.value);
        for (let i = 0; i < op.length; i++) ref.set(op.addr + BigInt(i), op.value);
      }
    }
    for (const [addr, length] of reads) {
      const want = Uint8Array.from({ length }, (_, i) => refGet(addr + BigInt(i)));
      expect(store.read(addr, length)).toEqual(want);
    }
    // Resident memory is bounded by what was written as bytes: described writes cost two chunks at most.
    expect(store.residentChunks).toBeLessThanOrEqual(mayBeReal.size + edgeChunks);
  });
});

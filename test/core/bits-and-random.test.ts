/**
 * The bit helpers against a string reference, the formatters and parsers at their edges, the errno
 * a PhysrError carries, and SeededRandom against an independent reference of its published
 * algorithms (splitmix64 seeding xoshiro128**).
 */
import { fc, test as propTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import {
  formatAddress,
  formatHex,
  formatSize,
  highestSetBit,
  lowestSetBit,
  PhysrError,
  parseAddress,
  parseSize,
  SeededRandom,
  toU64,
} from '../../src/core/index.ts';
import { expectErrno } from '../errno.ts';
import { propertyRuns } from '../thorough.ts';

describe('__ffs / __fls', () => {
  // Reference: the binary digits themselves.
  const ffs = (v: bigint) => {
    const s = v.toString(2);
    return s.length - 1 - s.lastIndexOf('1');
  };
  const fls = (v: bigint) => v.toString(2).length - 1;

  test.each([1n, 2n, 0x8000_0000n, 1n << 32n, 1n << 40n, 3n << 62n, 1n << 63n, (1n << 64n) - 1n])(
    '%s',
    (v) => {
      expect(lowestSetBit(v)).toBe(ffs(v));
      expect(highestSetBit(v)).toBe(fls(v));
    },
  );

  propTest.prop([fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 63 })], {
    numRuns: propertyRuns(200),
  })('any non-zero u64, also with its low bits cleared', (v, shift) => {
    const shifted = BigInt.asUintN(64, v << BigInt(shift)) || 1n;
    for (const x of [v, shifted]) {
      expect([lowestSetBit(x), highestSetBit(x)]).toEqual([ffs(x), fls(x)]);
    }
  });
});

describe('formatting and parsing', () => {
  test('hex, %pa-style addresses and kernel-style sizes', () => {
    expect(formatHex(0x1234n)).toBe('0x1234');
    expect(formatHex(-0x10n)).toBe('-0x10');
    expect(formatHex(0n)).toBe('0x0');
    expect(formatAddress(0xfee0_0000n)).toBe('0x00000000fee00000');
    expect(formatSize(0n)).toBe('0');
    expect(formatSize(2n << 20n)).toBe('2M');
    expect(formatSize(4097n)).toBe('4097');
  });

  test('sizes and addresses with separators, suffixes and spaces', () => {
    expect(parseSize('1_024')).toBe(1024n);
    expect(parseSize(' 2MiB ')).toBe(2n << 20n);
    expect(parseSize('3 k')).toBe(3072n);
    expect(parseSize('0x10b')).toBe(0x10bn); // hex digits, not a "b" suffix
    expect(parseSize('16B')).toBe(16n);
    expect(parseAddress(' 0xfee0_0000 ')).toBe(0xfee0_0000n);
    expect(parseAddress('0b1010')).toBe(10n);
    expect(parseAddress(4096)).toBe(4096n);
    expectErrno(
      () => parseAddress('fee00000'),
      'EINVAL',
      /address "fee00000" is not an address \(expected e\.g\. 0xfee00000\)/,
    );
    expect(parseAddress('0x1', 'BAR start')).toBe(1n);
  });

  test('a Number that is not an exact integer is refused, naming what it was', () => {
    expectErrno(() => toU64(1.5, 'length'), 'EINVAL', /^length 1\.5 is not an integer$/);
    expectErrno(() => toU64(2 ** 53 + 2, 'iova'), 'EINVAL', /^iova 9007199254740994 is above 2\^53/);
    expect(toU64(2 ** 53 - 1)).toBe(2n ** 53n - 1n);
  });

  test("a PhysrError's code is the negative errno the kernel returns", () => {
    expect(new PhysrError('EINVAL', 'x').code).toBe(-22);
    expect(new PhysrError('ENOMEM', 'x').code).toBe(-12);
    expect(new PhysrError('EFAULT', 'x').code).toBe(-14);
  });
});

/** splitmix64 (Vigna, splitmix64.c) and xoshiro128** (Blackman & Vigna), written from the papers. */
function referenceStream(seed: bigint, count: number): number[] {
  const M = (1n << 64n) - 1n;
  let x = seed & M;
  const splitmix = () => {
    x = (x + 0x9e3779b97f4a7c15n) & M;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return (z ^ (z >> 31n)) & M;
  };
  const s = [splitmix(), splitmix(), splitmix(), splitmix()].map((v) => Number(v & 0xffff_ffffn));
  s[3] = (s[3]! | 1) >>> 0;
  const rotl = (v: number, k: number) => ((v << k) | (v >>> (32 - k))) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0);
    const t = (s[1]! << 9) >>> 0;
    s[2] = (s[2]! ^ s[0]!) >>> 0;
    s[3] = (s[3]! ^ s[1]!) >>> 0;
    s[1] = (s[1]! ^ s[2]!) >>> 0;
    s[0] = (s[0]! ^ s[3]!) >>> 0;
    s[2] = (s[2]! ^ t) >>> 0;
    s[3] = rotl(s[3]!, 11);
  }
  return out;
}

describe('SeededRandom', () => {
  test('the reference splitmix64 gives the published first output for seed 0', () => {
    // splitmix64.c with x = 0: the first value is 0xe220a8397b1dcdaf.
    let x = 0n;
    x = (x + 0x9e3779b97f4a7c15n) & ((1n << 64n) - 1n);
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & ((1n << 64n) - 1n);
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & ((1n << 64n) - 1n);
    expect(z ^ (z >> 31n)).toBe(0xe220a8397b1dcdafn);
  });

  test.each([0n, 1n, 42n, 0xdead_beefn, (1n << 64n) - 1n])(
    'seed %s: the same 32-bit stream as the reference',
    (seed) => {
      const random = new SeededRandom(seed);
      const got = Array.from({ length: 64 }, () => random.nextUint32());
      expect(got).toEqual(referenceStream(seed, 64));
    },
  );

  test('next() is the 32-bit value over 2^32; int() spans both ends; pick() and shuffle() use them', () => {
    const reference = referenceStream(7n, 4);
    const random = new SeededRandom(7);
    expect(random.next()).toBe(reference[0]! / 2 ** 32);
    // int(10, 13): 10 + floor(u * 4)
    expect(random.int(10, 13)).toBe(10 + Math.floor((reference[1]! / 2 ** 32) * 4));
    const items = ['a', 'b', 'c', 'd', 'e'];
    expect(random.pick(items)).toBe(items[Math.floor((reference[2]! / 2 ** 32) * 5)]);
    const draws = new SeededRandom(3);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) seen.add(draws.int(-2, 2));
    expect([...seen].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2]);
    expect(() => new SeededRandom(1).pick([])).toThrow(RangeError);
  });

  test('shuffle is the Fisher–Yates walk from the top with int(0, i)', () => {
    const values = referenceStream(11n, 9).map((u) => u / 2 ** 32);
    const expected = Array.from({ length: 10 }, (_, i) => i);
    for (let i = 9, k = 0; i > 0; i--, k++) {
      const j = Math.floor(values[k]! * (i + 1));
      [expected[i], expected[j]] = [expected[j]!, expected[i]!];
    }
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(new SeededRandom(11).shuffle(items)).toEqual(expected);
    expect(items).toEqual(expected); // in place
  });

  test('shuffle draws one value per step down to i = 1, none for i = 0', () => {
    const random = new SeededRandom(5);
    random.shuffle([1, 2, 3, 4]);
    // Three draws (i = 3, 2, 1): the next value is the reference's fourth.
    expect(random.nextUint32()).toBe(referenceStream(5n, 4)[3]);
    const single = new SeededRandom(5);
    expect(single.shuffle(['only'])).toEqual(['only']);
    expect(single.nextUint32()).toBe(referenceStream(5n, 1)[0]);
  });

  test('pick from an empty list says so', () => {
    expect(() => new SeededRandom(2).pick([])).toThrow(/^pick from an empty list$/);
  });
});

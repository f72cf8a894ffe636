import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  alignUp,
  formatAddress,
  formatSize,
  highestSetBit,
  isPhysrError,
  lowestSetBit,
  parseAddress,
  parseSize,
  rangeLast,
  toU64,
  U64_MAX,
} from '../../src/core/index.ts';

describe('sizes and addresses', () => {
  test('parses the kernel size styles', () => {
    expect(parseSize('4K')).toBe(4096n);
    expect(parseSize('2M')).toBe(2n << 20n);
    expect(parseSize('1G')).toBe(1n << 30n);
    expect(parseSize('2MiB')).toBe(2n << 20n);
    expect(parseSize('0x1000')).toBe(4096n);
  });

  test('16E does not fit and is refused', () => {
    expect(() => parseSize('16E')).toThrowError(/outside 0..2\^64-1/);
  });

  test('rejects bad size strings with EINVAL', () => {
    for (const bad of ['4X', '', '-1', '1.5G', 'K']) {
      try {
        parseSize(bad, 'size', { file: 'a.yaml', line: 3, field: 'steps[0].size' });
        expect.unreachable(bad);
      } catch (error) {
        expect(isPhysrError(error, 'EINVAL')).toBe(true);
      }
    }
  });

  test('never loses bits above 2^53', () => {
    expect(parseAddress('0xffffffffffffffff')).toBe(U64_MAX);
    expect(formatAddress(parseAddress('0xfffffffffffff001'))).toBe('0xfffffffffffff001');
    expect(() => toU64(2 ** 60)).toThrowError(/above 2\^53/);
    expect(() => toU64(1.5)).toThrowError(/not an integer/);
  });

  test('a range ending at the very top round-trips; one byte more is EINVAL', () => {
    expect(rangeLast(0xffff_ffff_ffff_f000n, 4096n)).toBe(U64_MAX);
    expect(() => rangeLast(0xffff_ffff_ffff_f000n, 4097n)).toThrowError(/runs past the end/);
    expect(() => alignUp(U64_MAX, 4096n)).toThrowError(/overflows/);
  });

  test.prop([fc.bigInt({ min: 0n, max: U64_MAX })])('address print/parse round-trips', (value) => {
    expect(parseAddress(formatAddress(value))).toBe(value);
    expect(parseSize(formatSize(value))).toBe(value);
  });

  test.prop([fc.bigInt({ min: 1n, max: U64_MAX })])('bit scans agree with string forms', (value) => {
    const binary = value.toString(2);
    expect(highestSetBit(value)).toBe(binary.length - 1);
    expect(lowestSetBit(value)).toBe(binary.length - 1 - binary.lastIndexOf('1'));
  });
});

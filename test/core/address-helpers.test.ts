/**
 * The small address helpers at their edges: branded constructors (which name what they refuse),
 * power-of-two and alignment arithmetic (include/linux/align.h, log2.h), DMA_BIT_MASK
 * (include/linux/dma-mapping.h), memparse-style size suffixes (lib/cmdline.c) and the address
 * parser's accepted forms.
 */
import { describe, expect, test } from 'vitest';
import {
  alignDown,
  alignUp,
  dmaAddr,
  dmaBitMask,
  iovaAddr,
  isAligned,
  isPowerOfTwo,
  parseAddress,
  parseSize,
  physAddr,
  rangeLast,
  toU64,
  U64_MAX,
} from '../../src/core/index.ts';
import { caughtPhysrError, expectErrno } from '../errno.ts';

describe('branded addresses', () => {
  test('a u64 passes unchanged, also from a safe Number', () => {
    expect(physAddr(0x1000)).toBe(0x1000n);
    expect(dmaAddr(U64_MAX)).toBe(U64_MAX);
    expect(iovaAddr(0n)).toBe(0n);
  });

  test('each refusal names the kind of address', () => {
    expectErrno(() => physAddr(-1n), 'EINVAL', /^physical address -0x1 is outside 0\.\.2\^64-1$/);
    expectErrno(() => dmaAddr(1n << 64n), 'EINVAL', /^DMA address 0x10000000000000000 is outside/);
    expectErrno(() => iovaAddr(0.5), 'EINVAL', /^IOVA 0\.5 is not an integer$/);
    expectErrno(() => physAddr(2 ** 60, 'BAR base'), 'EINVAL', /^BAR base .* pass a bigint$/);
  });

  test('toU64 keeps the location of the input it checks', () => {
    const e = caughtPhysrError(() => toU64(3.25, 'size', { file: 's.yaml', line: 2, field: 'len' }));
    expect(e.location).toEqual({ file: 's.yaml', line: 2, field: 'len' });
    expect(caughtPhysrError(() => toU64(2 ** 54, 'size', { line: 8 })).location).toEqual({ line: 8 });
    expect(toU64(-0)).toBe(0n);
  });

  test('rangeLast names the range in its refusals', () => {
    expectErrno(
      () => rangeLast(0x2000n, 0n, 'BAR0'),
      'EINVAL',
      /^BAR0 at 0x2000 has length 0, must be positive$/,
    );
    expectErrno(() => rangeLast(U64_MAX, 2n), 'EINVAL', /^range 0xffffffffffffffff \+ 0x2 runs past/);
    expect(rangeLast(U64_MAX, 1n)).toBe(U64_MAX);
  });
});

describe('powers of two and alignment', () => {
  test('is_power_of_2: 0 is not, 1 is, 2^63 is, a value with two bits is not', () => {
    expect([0n, 1n, 2n, 3n, 4096n, 4097n, 6n, 1n << 63n, U64_MAX].map(isPowerOfTwo)).toEqual([
      false,
      true,
      true,
      false,
      true,
      false,
      false,
      true,
      false,
    ]);
    expect(isPowerOfTwo(-4n)).toBe(false);
  });

  test('IS_ALIGNED looks only at the bits below the alignment', () => {
    expect(isAligned(0x3000n, 0x1000n)).toBe(true);
    expect(isAligned(0x3001n, 0x1000n)).toBe(false);
    expect(isAligned(0x3800n, 0x1000n)).toBe(false);
    expect(isAligned(0x20_0000n, 0x20_0000n)).toBe(true);
    expect(isAligned(7n, 1n)).toBe(true);
    expect(isAligned(1n << 63n, 1n << 63n)).toBe(true);
  });

  test('ALIGN_DOWN clears the low bits and keeps a 64-bit value 64-bit', () => {
    expect(alignDown(0x3fffn, 0x1000n)).toBe(0x3000n);
    expect(alignDown(0x3000n, 0x1000n)).toBe(0x3000n);
    expect(alignDown(0xfffn, 0x1000n)).toBe(0n);
    expect(alignDown(U64_MAX, 0x20_0000n)).toBe(0xffff_ffff_ffe0_0000n);
    expect(alignDown(5n, 1n)).toBe(5n);
  });

  test('ALIGN rounds up, keeps an aligned value, and refuses only what passes 2^64', () => {
    expect(alignUp(0x3001n, 0x1000n)).toBe(0x4000n);
    expect(alignUp(0x3000n, 0x1000n)).toBe(0x3000n);
    expect(alignUp(0n, 0x1000n)).toBe(0n);
    expect(alignUp(1n, 0x20_0000n)).toBe(0x20_0000n);
    // The last 4 KiB page's start aligns to itself; any byte above the last 2 MiB start does not fit.
    expect(alignUp(0xffff_ffff_ffff_f000n, 0x1000n)).toBe(0xffff_ffff_ffff_f000n);
    expect(alignUp(U64_MAX, 1n)).toBe(U64_MAX);
    expectErrno(
      () => alignUp(0xffff_ffff_ffe0_0001n, 0x20_0000n),
      'EINVAL',
      /^0xffffffffffe00001 aligned up to 0x200000 overflows 64 bits$/,
    );
  });
});

describe('DMA_BIT_MASK', () => {
  test('n low bits set for n in 0..64', () => {
    expect(dmaBitMask(0)).toBe(0n);
    expect(dmaBitMask(1)).toBe(1n);
    expect(dmaBitMask(32)).toBe(0xffff_ffffn);
    expect(dmaBitMask(39)).toBe(0x7f_ffff_ffffn);
    expect(dmaBitMask(64)).toBe(U64_MAX);
  });

  test('a width outside 0..64 or not a whole number is EINVAL, naming the width', () => {
    expectErrno(() => dmaBitMask(65), 'EINVAL', /^DMA mask width 65 is not 0\.\.64$/);
    expectErrno(() => dmaBitMask(-1), 'EINVAL', /^DMA mask width -1 is not 0\.\.64$/);
    expectErrno(() => dmaBitMask(31.5), 'EINVAL', /^DMA mask width 31\.5 /);
  });
});

describe('size suffixes and address forms', () => {
  test('every memparse suffix is a power of 1024, in both cases and with KB/KiB', () => {
    expect(parseSize('3K')).toBe(3n << 10n);
    expect(parseSize('3m')).toBe(3n << 20n);
    expect(parseSize('3G')).toBe(3n << 30n);
    expect(parseSize('3T')).toBe(3n << 40n);
    expect(parseSize('3p')).toBe(3n << 50n);
    expect(parseSize('3E')).toBe(3n << 60n);
    expect(parseSize('2KB')).toBe(2048n);
    expect(parseSize('2kib')).toBe(2048n);
    expect(parseSize('0x10M')).toBe(16n << 20n);
    expect(parseSize('4096')).toBe(4096n);
    expect(parseSize(8192)).toBe(8192n);
  });

  test('a size refusal names the field and the text and keeps the location', () => {
    const e = caughtPhysrError(() => parseSize('12Q', 'window size', { file: 'w.yaml', line: 4 }));
    expect(e.errno).toBe('EINVAL');
    expect(e.reason).toMatch(/^window size "12Q" is not a size \(expected e\.g\. .*2MiB\)$/);
    expect(e.location).toEqual({ file: 'w.yaml', line: 4 });
  });

  test('addresses: octal, separators in every base; anything else is refused', () => {
    expect(parseAddress('0o17')).toBe(15n);
    expect(parseAddress('0b1_0000')).toBe(16n);
    expect(parseAddress('1_000')).toBe(1000n);
    expect(parseAddress('0X1_0')).toBe(16n);
    for (const bad of ['', '0x', '12abc', '0x1 0', '1e3', '-5', '0x1g', '4K']) {
      const e = caughtPhysrError(() => parseAddress(bad, 'iova', { field: 'steps[1].iova' }));
      expect(e.errno).toBe('EINVAL');
      expect(e.reason).toContain(`iova "${bad}" is not an address`);
      expect(e.location).toEqual({ field: 'steps[1].iova' });
    }
    expectErrno(() => parseAddress('0x1_0000_0000_0000_0000'), 'EINVAL', /outside 0\.\.2\^64-1/);
  });
});

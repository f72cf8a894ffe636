/**
 * Addresses and sizes, full 64-bit. Physical, bus/DMA and IOVA addresses are distinct branded
 * bigints so the type checker keeps them apart; a length is a bigint too (a BAR can be 2^40 bytes and
 * a range can reach the top of the address space). Ranges use the kernel's inclusive `last` where the
 * exclusive end would be 2^64 (see maple tree, generic_pt).
 */
import { fail, type SourceLocation } from './errors.ts';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A CPU physical address (phys_addr_t). */
export type PhysAddr = Brand<bigint, 'PhysAddr'>;
/** An address a device puts on the bus (dma_addr_t): a bus address or an IOVA. */
export type DmaAddr = Brand<bigint, 'DmaAddr'>;
/** An I/O virtual address inside an IOMMU domain. */
export type IovaAddr = Brand<bigint, 'IovaAddr'>;

export const U64_MAX = (1n << 64n) - 1n;
export const ADDRESS_SPACE = 1n << 64n;

export const SZ_4K = 0x1000n;
export const SZ_2M = 0x20_0000n;
export const SZ_1G = 0x4000_0000n;
export const PAGE_SHIFT = 12n;
export const PAGE_SIZE = 1n << PAGE_SHIFT;

/** Checks a value is a u64 and brands it. */
export function physAddr(value: bigint | number, what = 'physical address'): PhysAddr {
  return toU64(value, what) as PhysAddr;
}
export function dmaAddr(value: bigint | number, what = 'DMA address'): DmaAddr {
  return toU64(value, what) as DmaAddr;
}
export function iovaAddr(value: bigint | number, what = 'IOVA'): IovaAddr {
  return toU64(value, what) as IovaAddr;
}

/** A u64 from a bigint or a safe integer Number; anything else is EINVAL (never a silent rounding). */
export function toU64(value: bigint | number, what = 'value', location?: SourceLocation): bigint {
  let big: bigint;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) fail('EINVAL', `${what} ${value} is not an integer`, location);
    if (!Number.isSafeInteger(value)) {
      fail(
        'EINVAL',
        `${what} ${value} is above 2^53 as a Number and may have lost bits; pass a bigint`,
        location,
      );
    }
    big = BigInt(value);
  } else {
    big = value;
  }
  if (big < 0n || big > U64_MAX) fail('EINVAL', `${what} ${formatHex(big)} is outside 0..2^64-1`, location);
  return big;
}

/** `start + length - 1`, refusing a range that would run past 2^64 (EINVAL) or be empty. */
export function rangeLast(start: bigint, length: bigint, what = 'range'): bigint {
  if (length <= 0n) fail('EINVAL', `${what} at ${formatHex(start)} has length ${length}, must be positive`);
  const last = start + length - 1n;
  if (last > U64_MAX) {
    fail(
      'EINVAL',
      `${what} ${formatHex(start)} + ${formatHex(length)} runs past the end of the 64-bit space`,
    );
  }
  return last;
}

export function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n;
}

export function isAligned(value: bigint, alignment: bigint): boolean {
  return (value & (alignment - 1n)) === 0n;
}

/** Rounds down to a power-of-two alignment. */
export function alignDown(value: bigint, alignment: bigint): bigint {
  return value & ~(alignment - 1n) & U64_MAX;
}

/** Rounds up to a power-of-two alignment; EINVAL if that passes 2^64. */
export function alignUp(value: bigint, alignment: bigint): bigint {
  const up = (value + alignment - 1n) & ~(alignment - 1n);
  if (up > U64_MAX)
    fail('EINVAL', `${formatHex(value)} aligned up to ${formatHex(alignment)} overflows 64 bits`);
  return up;
}

/** Index of the lowest set bit (__ffs); value must be non-zero. */
export function lowestSetBit(value: bigint): number {
  let bit = 0;
  let v = value;
  while ((v & 0xffff_ffffn) === 0n) {
    v >>= 32n;
    bit += 32;
  }
  const low = Number(v & 0xffff_ffffn);
  return bit + (31 - Math.clz32(low & -low));
}

/** Index of the highest set bit (__fls); value must be non-zero. */
export function highestSetBit(value: bigint): number {
  // 32 bits at a time with Math.clz32: no string is built (this runs once per iommu_pgsize step).
  let bit = 0;
  let v = value;
  while (v > 0xffff_ffffn) {
    v >>= 32n;
    bit += 32;
  }
  const high = Number(v);
  return high === 0 ? bit : bit + 31 - Math.clz32(high);
}

/** Kernel `%pa`-style: `0x` and 16 hex digits. */
export function formatAddress(value: bigint): string {
  return `0x${value.toString(16).padStart(16, '0')}`;
}

/** Plain `0x…` without padding (what lspci and /proc/iomem users read easily). */
export function formatHex(value: bigint): string {
  return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
}

const SIZE_UNITS: ReadonlyArray<readonly [string, bigint]> = [
  ['E', 1n << 60n],
  ['P', 1n << 50n],
  ['T', 1n << 40n],
  ['G', 1n << 30n],
  ['M', 1n << 20n],
  ['K', 1n << 10n],
];

/** A size the kernel's way: `4K`, `2M`, `1G` when exact, else the byte count (`4097`). */
export function formatSize(value: bigint): string {
  if (value === 0n) return '0';
  for (const [suffix, unit] of SIZE_UNITS) {
    if (value % unit === 0n) return `${value / unit}${suffix}`;
  }
  return value.toString();
}

const SIZE_PATTERN = /^(0x[0-9a-f_]+|0b[01_]+|0o[0-7_]+|[0-9][0-9_]*)\s*(?:([kmgtpe])(i?b)?|(b))?$/i;
const ADDRESS_PATTERN = /^(0x[0-9a-f_]+|0b[01_]+|0o[0-7_]+|[0-9][0-9_]*)$/i;

/**
 * Parses a size: a decimal or `0x` integer with an optional binary suffix `K M G T P E`, `KiB`,
 * `KB` (memparse in lib/cmdline.c treats K/M/G as powers of 1024; so do we). `_` separators allowed.
 */
export function parseSize(text: string | bigint | number, what = 'size', location?: SourceLocation): bigint {
  if (typeof text !== 'string') return toU64(text, what, location);
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) {
    fail(
      'EINVAL',
      `${what} "${text}" is not a size (expected e.g. 4096, 0x1000, 4K, 2M, 1G, 2MiB)`,
      location,
    );
  }
  const number = BigInt(match[1]!.replaceAll('_', ''));
  const suffix = match[2]?.toUpperCase();
  const unit = suffix === undefined ? 1n : (SIZE_UNITS.find(([s]) => s === suffix)?.[1] ?? 1n);
  return toU64(number * unit, what, location);
}

/** Parses an address: decimal, `0x…` (with `_` separators), `0b…` or `0o…`; must fit in 64 bits. */
export function parseAddress(
  text: string | bigint | number,
  what = 'address',
  location?: SourceLocation,
): bigint {
  if (typeof text !== 'string') return toU64(text, what, location);
  const trimmed = text.trim();
  if (!ADDRESS_PATTERN.test(trimmed)) {
    fail('EINVAL', `${what} "${text}" is not an address (expected e.g. 0xfee00000)`, location);
  }
  return toU64(BigInt(trimmed.replaceAll('_', '')), what, location);
}

/** DMA_BIT_MASK(n) from include/linux/dma-mapping.h: n low bits set, n in 0..64. */
export function dmaBitMask(bits: number): bigint {
  if (!Number.isInteger(bits) || bits < 0 || bits > 64) fail('EINVAL', `DMA mask width ${bits} is not 0..64`);
  return (1n << BigInt(bits)) - 1n;
}

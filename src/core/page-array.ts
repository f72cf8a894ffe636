/**
 * The legacy `struct page **` array pin_user_pages fills, modelled as a BigUint64Array of page frame
 * numbers. Filling and reading it through 32-bit halves costs no BigInt a page, which matters when a
 * 64 GiB pin holds 16 Mi entries.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Index of the low and high 32-bit halves of a 64-bit entry in a Uint32Array view. */
const LOW = LITTLE_ENDIAN ? 0 : 1;
const HIGH = 1 - LOW;
const TWO_32 = 0x1_0000_0000;

function words(pages: BigUint64Array): Uint32Array {
  return new Uint32Array(pages.buffer, pages.byteOffset, pages.length * 2);
}

/** Writes the frames pfn, pfn + 1, … (`count` of them) into `pages` from index `at`. */
export function fillPageArray(pages: BigUint64Array, at: number, pfn: number, count: number): void {
  const w = words(pages);
  for (let i = 0; i < count; i++) {
    const frame = pfn + i;
    w[2 * (at + i) + LOW] = frame >>> 0;
    w[2 * (at + i) + HIGH] = Math.floor(frame / TWO_32);
  }
}

/** A reader of entry i of `pages` as a Number (frames stay below 2^52). */
export function pageArrayReader(pages: BigUint64Array): (i: number) => number {
  const w = words(pages);
  return (i) => w[2 * i + LOW]! + w[2 * i + HIGH]! * TWO_32;
}

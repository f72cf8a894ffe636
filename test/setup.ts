/**
 * Runs before every test file. Byte arrays of several MiB are compared often (what a device reads
 * against what the CPU wrote); vitest's generic deep equality walks them element by element (about
 * 30 s for 2 MiB), so typed arrays of one kind are compared as raw bytes instead. Any other pair
 * falls through to the usual rules.
 */
import { expect } from 'vitest';

function sameTypedArrays(a: unknown, b: unknown): boolean | undefined {
  if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a instanceof DataView || b instanceof DataView)
    return undefined;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return undefined;
  if (a.byteLength !== b.byteLength) return false;
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

expect.addEqualityTesters([sameTypedArrays]);

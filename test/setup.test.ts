import { describe, expect, it } from 'vitest';

// test/setup.ts compares typed arrays as raw bytes; it must still tell them apart.
describe('typed-array equality (test/setup.ts)', () => {
  it('equal bytes are equal, a changed byte or length is not', () => {
    const a = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    expect(a).toEqual(a.slice());
    const b = a.slice();
    b[123_456] = (b[123_456]! + 1) & 0xff;
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(a.subarray(1));
  });
  it('views at an offset compare their own bytes only', () => {
    const whole = new Uint8Array([9, 1, 2, 3]);
    expect(whole.subarray(1)).toEqual(new Uint8Array([1, 2, 3]));
  });
  it('arrays of different kinds are not equal', () => {
    expect(new Uint8Array([1, 0])).not.toEqual(new Uint16Array([1]));
  });
});

/**
 * The io-pgtable-arm target's known difference (block split on a partial unmap, removed in 6.13) is
 * checked on both sides: a line recorded from Linux 6.12's io-pgtable-arm.c must pass the split rule
 * and fail the keep rule, the model must keep the block, and each clause of the split rule can fail.
 */
import { describe, expect, test } from 'vitest';
import { ioPgtableArmTarget, type PtCase, splitRuleViolation } from './targets/io-pgtable-arm.ts';

// Seed 30 of the target: a 2 MiB block at 4K granule, 128 KiB unmapped inside it.
const c: PtCase = {
  granule: 4096,
  bitmap: 2101248n,
  splitAt: 4,
  ops: [
    { op: 'm', iova: 12218913521664n, paddr: 997063655424n, size: 2097152n, prot: 19 },
    { op: 't' },
    { op: 'p', iova: 12218915177669n },
    { op: 'p', iova: 12218914625537n },
    { op: 'u', iova: 12218915094528n, size: 131072n },
    { op: 'p', iova: 12218915177669n },
    { op: 'p', iova: 12218914625537n },
    { op: 't' },
  ],
};
const hole = '997065311429/2:997063659081';
const rest = '997064759297/2:997063659081';
// The 6.12 C's answer: the block split, the hole empty at level 3, the rest a 4K page with the
// block's attributes, one more table page.
const linux612 = `0 t3 ${hole} ${rest} 131072!split 0/3- 997064759297/3:997064760907 t4`;
const keep = `0 t3 ${hole} ${rest} 0 ${hole} ${rest} t3`;
const settled = `0 t3 ${hole} ${rest} split-rule-6.13-holds`;

describe('io-pgtable-arm known difference: split on a partial unmap (6.13)', () => {
  test('the 6.12 answer follows the split rule, not the keep rule', () => {
    expect(splitRuleViolation(c, linux612.split(' '), 'split')).toBeUndefined();
    expect(splitRuleViolation(c, linux612.split(' '), 'keep')).toBe('unmap returned 131072!split, not 0');
  });

  test('the keep answer follows the keep rule, not the split rule', () => {
    expect(splitRuleViolation(c, keep.split(' '), 'keep')).toBeUndefined();
    expect(splitRuleViolation(c, keep.split(' '), 'split')).toBe('unmap returned 0, not 131072 with a split');
  });

  test('the model keeps the block; the 6.12 line settles to the same words, a 6.13 tree would not', () => {
    expect(ioPgtableArmTarget.model(c, '6.12')).toBe(settled);
    expect(ioPgtableArmTarget.kernelAnswer?.(c, linux612, '6.12')).toBe(settled);
    expect(ioPgtableArmTarget.kernelAnswer?.(c, linux612, '6.13')).toBe(
      `${linux612} | breaks the keep rule: unmap returned 131072!split, not 0`,
    );
  });

  test('each clause of the split rule can fail', () => {
    const wrong = (from: string, to: string) =>
      splitRuleViolation(c, linux612.replace(from, to).split(' '), 'split');
    expect(wrong('131072!split', '131072')).toBe('unmap returned 131072, not 131072 with a split');
    expect(wrong('0/3-', hole)).toBe(`the hole reads ${hole}`);
    expect(wrong('997064759297/3:', '997064759297/2:')).toMatch(/^the rest reads/);
    // Execute-never (bit 54) added: an attribute the block did not have.
    const xn = (997064760907n | (1n << 54n)).toString();
    expect(wrong('997064760907', xn)).toBe(`the rest lost the block's attributes: 997064759297/3:${xn}`);
    expect(wrong('997064760907', '997064760905')).toBe(
      'the rest has the wrong type: 997064759297/3:997064760905',
    );
    expect(wrong('997064760907', (997064760907n + 4096n).toString())).toMatch(/^the rest's leaf address/);
    expect(wrong('t4', 't3')).toBe('table pages went from t3 to t3');
  });
});

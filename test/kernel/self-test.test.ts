/**
 * The differential targets' comparators can fail: fed the model's answers with one number changed,
 * each reports exactly that case with its seed. Runs without the kernel (no C, no apt).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { changeOneNumber, extractFunctions, formatResult, seedsFrom, selfTest } from './harness.ts';
import { TARGETS } from './targets/index.ts';

describe('differential self-test', () => {
  for (const target of TARGETS) {
    test(`${target.name}: a changed answer is reported with its seed`, () => {
      const { result, corruptedSeed } = selfTest(target, seedsFrom(7, 40), '6.12');
      expect(result.cases).toBe(40);
      expect(result.mismatches).toBe(1);
      expect(result.first?.seed).toBe(corruptedSeed);
      expect(formatResult(result)).toContain(`--target ${target.name} --seed ${corruptedSeed}`);
    });
  }

  test('changeOneNumber bumps the last number only', () => {
    expect(changeOneNumber('rc=0 nents=3 | 9+0:4096e')).toBe('rc=0 nents=3 | 9+0:4097e');
    expect(changeOneNumber('pfn 18446744073709551615')).toBe('pfn 18446744073709551616');
    expect(changeOneNumber('none')).toBe('none 1');
  });

  test('extractFunctions takes a static definition by name and drops static/inline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-extract-'));
    const file = join(dir, 'x.c');
    writeFileSync(
      file,
      [
        'static int helper(int a);',
        'static inline int',
        'helper(int a)',
        '{',
        '\treturn a + 1;',
        '}',
        'int other(void)',
        '{',
        '\treturn helper(1);',
        '}',
      ].join('\n'),
    );
    const text = extractFunctions(file, ['helper']);
    expect(text).toContain('int\nhelper(int a)\n{\n\treturn a + 1;\n}');
    expect(text).not.toContain('static');
    expect(text).not.toContain('other');
    expect(() => extractFunctions(file, ['missing'])).toThrow('no definition of missing');
  });
});

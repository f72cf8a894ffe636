import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { Metrics } from '../../src/core/index.ts';
import { isScenarioError } from '../../src/sim/index.ts';
import { loadPlatformFile } from '../../src/sim/platforms.ts';

const dir = mkdtempSync(join(tmpdir(), 'physr-platform-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refusal(text: string) {
  const path = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  try {
    loadPlatformFile(path, { seed: 1n, metrics: new Metrics() });
  } catch (error) {
    if (isScenarioError(error)) return { path, error };
    throw error;
  }
  throw new Error('platform file was accepted');
}

describe('a bad platform file is one error located in that file', () => {
  test.each([
    ['an unresolved alias', 'topology: *t\n', 1, 11, undefined, /alias \*t has no anchor/],
    [
      'an unknown topology',
      'name: p\ntopology: mainframe\n',
      2,
      11,
      'topology',
      /no built-in topology "mainframe"/,
    ],
    ['a bad size', 'topology: x86-2s\nram:\n  - { start: 0, size: lots }\n', 3, 23, 'ram[0].size', /lots/],
    ['a bad iommu', 'topology: x86-2s\niommu: sparc\n', 2, 8, 'iommu', /intel-vt-d/],
  ])('%s', (_what, text, line, column, field, reason) => {
    const { path, error } = refusal(text);
    expect(error.location).toMatchObject({ file: path, line, column });
    expect(error.location?.field).toBe(field);
    expect(error.reason).toMatch(reason);
  });
});

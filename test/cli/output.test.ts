import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { captureCli } from './capture.ts';

const dir = mkdtempSync(join(tmpdir(), 'physr-output-'));
const hasFull = existsSync('/dev/full');

describe('report outputs are checked before the run and fail as one located line', () => {
  test('--html into a missing directory or a directory: exit 2 before any scenario runs', async () => {
    for (const [path, errno] of [
      [join(dir, 'nope', 'r.html'), 'ENOENT'],
      [dir, 'EISDIR'],
    ] as const) {
      const { status, stdout, stderr } = await captureCli(['run', 'iotlb-strict', '--html', path]);
      expect(status).toBe(2);
      // Nothing ran: no report on stdout.
      expect(stdout).toBe('');
      expect(stderr).toMatch(new RegExp(`^physr: ${path.replace(/[/.]/g, '\\$&')}: ${errno}: --html `));
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  test.skipIf(!hasFull)('--html on a full device is ENOSPC naming it, exit 2', async () => {
    const { status, stderr } = await captureCli(['run', 'iotlb-strict', '--html', '/dev/full']);
    expect(status).toBe(2);
    expect(stderr).toBe('physr: /dev/full: ENOSPC: --html "/dev/full": write failed (ENOSPC)\n');
  });

  test.skipIf(!hasFull)('stdout on a full device is ENOSPC on <stdout>, exit 2, no stack', () => {
    const full = openSync('/dev/full', 'w');
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'list', '--json'], {
        stdio: ['ignore', full, 'pipe'],
        encoding: 'utf8',
      });
    } catch (error) {
      const failed = error as { status: number; stderr: string };
      status = failed.status;
      stderr = failed.stderr;
    } finally {
      closeSync(full);
    }
    expect(status).toBe(2);
    expect(stderr).toBe('physr: <stdout>: ENOSPC: writing the report failed (ENOSPC)\n');
  });
});

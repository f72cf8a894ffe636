/**
 * The CLI as a Unix tool: a closed pipe ends it quietly, exit statuses mean one thing each (0 ok,
 * 1 failed expectations only, 2 usage and input errors with their location, 70 internal), and
 * capture inputs that are not what they claim are refused at once.
 */
import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { captureCli } from './capture.ts';

const TREE = 'test/platform/fixtures/lspci-server-tree.txt';
const VERBOSE = 'test/platform/fixtures/lspci-server-verbose.txt';

describe('exit statuses', () => {
  test('--help documents them', async () => {
    const { stdout } = await captureCli(['--help']);
    expect(stdout).toContain('  1   a scenario expectation failed (run, compare); nothing else uses 1');
    expect(stdout).toContain('  70  an internal error');
  });

  test('an unknown option or a missing argument is a usage error: 2, not commander’s 1', async () => {
    expect((await captureCli(['topo', '--bogus'])).status).toBe(2);
    expect((await captureCli(['topo', '--sysfs'])).status).toBe(2);
    expect((await captureCli(['p2p', '--builtin', 'x86-2s', 'gpu0'])).status).toBe(2);
    expect((await captureCli(['p2p', '--builtin', 'x86-2s', '--matrix', '--cpu', 'sparc'])).stderr).toMatch(
      /--cpu: EINVAL: --cpu: "sparc" is not VENDOR\[:FAMILY\]/,
    );
  });

  test.each([
    [
      ['topo', '--lspci-tree', '/dev/zero', '--lspci-verbose', VERBOSE],
      /\/dev\/zero: EINVAL: .* is a character device/,
    ],
    [
      ['topo', '--lspci-tree', TREE, '--lspci-verbose', 'test'],
      /test: EINVAL: .*"test" is a directory, not a regular file/,
    ],
    [['topo', '--sysfs', '/proc'], /\/proc\/bus\/pci\/devices: ENOTDIR: /],
    [['groups', '--sysfs', 'scenarios'], /scenarios: EINVAL: expected a directory laid out like \/sys/],
    [
      ['topo', '--builtin', 'x86-2s', '--cmdline', 'pci=noats'],
      /--cmdline: EINVAL: pci=noats is not modelled/,
    ],
  ])('%j is one located error, exit 2', async (argv, message) => {
    const { status, stderr } = await captureCli(argv);
    expect(status).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });
});

describe('a closed pipe', () => {
  test('physr p2p --matrix --json | head -c 64: quiet, exit 0', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'p2p', '--matrix', '--json', '--builtin', 'x86-2s'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    // Read one chunk, then close the pipe as head does.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  }, 30_000);
});

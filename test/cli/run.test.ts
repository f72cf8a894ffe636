import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { captureCli } from './capture.ts';

const dir = mkdtempSync(join(tmpdir(), 'physr-run-'));

function scenarioFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('physr run', () => {
  test('no arguments runs the built-in suite and passes', async () => {
    // --repeat 0: the suite once, without the timing reruns (tested below on two small scenarios).
    const { status, stdout, stderr } = await captureCli(['run', '--repeat', '0']);
    expect(status).toBe(0);
    expect(stdout).toContain('range-list-metadata  ✓ passed');
    expect(stdout.split('\n')[0]).toMatch(/^✓ \d+ scenarios?: \d+ passed, 0 failed/);
    expect(stdout).not.toContain('map+unmap time');
    expect(stderr).toBe('');
  });

  test('summary first: the pass/fail line, the suite comparison, the model timing, then scenarios', async () => {
    const { status, stdout } = await captureCli([
      'run',
      'swiotlb-32bit',
      'range-list-metadata',
      '--repeat',
      '2',
    ]);
    expect(status).toBe(0);
    expect(stdout.split('\n')[0]).toMatch(
      /^✓ 2 scenarios: 2 passed, 0 failed, 0 errors; 20 steps; \d+ expectations met, 0 failed$/,
    );
    const suite = stdout.indexOf('physr vs scatterlist over the 2 scenarios that ran both designs');
    const timing = stdout.indexOf('map+unmap time of the model');
    const firstScenario = stdout.indexOf('swiotlb-32bit  ✓ passed');
    expect(suite).toBeGreaterThan(0);
    expect(timing).toBeGreaterThan(suite);
    expect(firstScenario).toBeGreaterThan(timing);
    expect(stdout).toMatch(
      /map\+unmap time of the model \(its CPU time, not the kernel's\), over 2 repetitions[^\n]*\n {2}physr +median \d+\.\d\d ms \(min \d+\.\d\d, max \d+\.\d\d\)\n {2}scatterlist +median/,
    );
    const bad = await captureCli(['run', 'swiotlb-32bit', '--repeat', 'many']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--repeat: expected a count 0..100, not "many"');
  });

  test('a malformed file: one located line and a caret on stderr, exit 2, no stack', async () => {
    const file = scenarioFile(
      'bad.yaml',
      'name: x\nplatform: core-only\nsteps:\n  - allocate: { name: b, size: 2Q }\n',
    );
    const { status, stdout, stderr } = await captureCli(['run', file]);
    expect(status).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(
      `physr: ${file}:4:32: steps[0].allocate.size: EINVAL: size "2Q" is not a size (expected e.g. 4096, 0x1000, 4K, 2M, 1G, 2MiB)`,
    );
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/\|\s+\^$/);
    expect(stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  test('a broken expectation: exit 1 and the step named; --json and --html carry the same run', async () => {
    const file = scenarioFile(
      'fail.yaml',
      'name: fails\nplatform: core-only\nsteps:\n  - build-list: { name: l, ranges: [ { addr: 0, len: 4K } ] }\n  - expect-counters: { counters: { core.physr_ranges: 2 } }\n',
    );
    const text = await captureCli(['run', file]);
    expect(text.status).toBe(1);
    expect(text.stdout).toContain(
      'failed at step 2 (expect-counters, line 5): expected core.physr_ranges = 2',
    );
    const html = join(dir, 'report.html');
    const json = await captureCli(['run', file, '--json', '--html', html, '--seed', '0x10']);
    expect(json.status).toBe(1);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.scenarios[0].seed).toBe('0x10');
    expect(parsed.scenarios[0].failure.step).toBe(1);
    // The page embeds the very run --json printed.
    const page = readFileSync(html, 'utf8');
    const embedded = JSON.parse(
      /<script type="application\/json" id="physr-data">(.*?)<\/script>/s.exec(page)![1]!,
    );
    expect(embedded.run).toEqual(parsed);
    expect(embedded.command).toBe(`physr run ${file}`);
  });

  test('an unknown name is ENOENT naming the built-ins; list and compare work; help exists', async () => {
    const missing = await captureCli(['run', 'no-such-scenario']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(
      /ENOENT: no scenario file or built-in scenario "no-such-scenario" \(built in: .*range-list-metadata/,
    );
    const list = await captureCli(['list']);
    expect(list.stdout).toMatch(/range-list-metadata\s+core-only/);
    // A platform booted with a kernel parameter reads as the user would write it, not as JSON.
    expect(list.stdout).toMatch(
      /p2p-gpu-nic-switch\s+x86-2s \+ pci=disable_acs_redir=0000:02:00\.0;0000:02:01\.0\s/,
    );
    expect(list.stdout).toMatch(/platforms:\n(.*\n)*\s+core-only\s+no memory map/);
    const compare = await captureCli(['compare', 'range-list-metadata']);
    expect(compare.status).toBe(0);
    expect(compare.stdout).toMatch(/metadata retained \(bytes\)\s+64\s+192\s+3\.00x/);
    const help = await captureCli(['run', '--help']);
    expect(help.stdout).toContain('--html <file>');
  });
});

/** `physr topo` and `physr p2p` through runCli, stdout/stderr captured. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { captureCli } from './capture.ts';

const FIX = join(import.meta.dirname, '..', 'platform', 'fixtures');
const LSPCI = [
  '--lspci-tree',
  join(FIX, 'lspci-server-tree.txt'),
  '--lspci-verbose',
  join(FIX, 'lspci-server-verbose.txt'),
];

describe('physr topo', () => {
  test('--html writes the interactive page: the tree and a decision for every ordered endpoint pair', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'physr-topo-')), 'topo.html');
    const { status, stdout } = await captureCli(['topo', '--builtin', 'x86-2s', '--html', out]);
    expect(status).toBe(0);
    expect(stdout).toContain('0000:03:00.0');
    const page = readFileSync(out, 'utf8');
    const doc = JSON.parse(
      /<script type="application\/json" id="physr-data">(.*?)<\/script>/s.exec(page)![1]!,
    );
    expect(doc.topology.labels.gpu0).toBe('0000:03:00.0');
    // x86-2s has 4 endpoints (gpu0, nic0, nvme0, nic1): 4 × 3 ordered pairs.
    expect(doc.topology.p2p).toHaveLength(12);
    const gpuToNic = doc.topology.p2p.find(
      (d: { provider: string; client: string }) =>
        d.provider === '0000:03:00.0' && d.client === '0000:04:00.0',
    );
    // x86-2s boots as Linux does with VT-d: ACS redirect on the switch ports sends it upstream.
    expect(gpuToNic).toMatchObject({ mapType: 'through-host-bridge', distance: 4 });
  });

  test('on this machine’s live /sys: says what it found, then the tree', async () => {
    const { status, stdout } = await captureCli(['topo']);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^read \d+ PCI functions? under \d+ host bridges? from \/sys/);
    expect(stdout).toContain('CPU: ');
  });

  test('from lspci text: bridges, BARs in kernel sizes, ACS flags, groups', async () => {
    const { status, stdout } = await captureCli(['topo', ...LSPCI]);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^read 14 PCI functions under 2 host bridges from lspci text/);
    expect(stdout).toContain('0000:82:00.0 switch-downstream [10b5:8796]');
    expect(stdout).toContain('BAR1 0x38000000000 [size=64G] 64-bit pref');
    expect(stdout).toContain(
      'ACSCtl: SrcValid+ TransBlk- ReqRedir- CmpltRedir- UpstreamFwd+ EgressCtrl- DirectTrans-',
    );
    expect(stdout).toContain('IOMMU group: 45 (reported)');
    // The GPU sits two levels below the root port, indented under its switch port.
    expect(stdout).toMatch(/\n {6}0000:82:00\.0[^\n]*\n(?: {10}[^\n]*\n)*? {8}0000:83:00\.0/);
  });

  test('--json keeps 64-bit addresses exact', async () => {
    const { status, stdout } = await captureCli(['topo', ...LSPCI, '--json']);
    expect(status).toBe(0);
    const json = JSON.parse(stdout);
    const gpu = json.topology.functions.find((f: { bdf: string }) => f.bdf === '0000:83:00.0');
    expect(gpu.bars[1]).toEqual({
      index: 1,
      cpuAddress: '0x38000000000',
      size: '0x1000000000',
      prefetchable: true,
      is64: true,
      io: false,
    });
    expect(gpu.parent).toBe('0000:82:00.0');
  });

  test('--builtin prints a built-in platform', async () => {
    const { status, stdout } = await captureCli(['topo', '--builtin', 'laptop']);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^read \d+ PCI functions under 1 host bridge from built-in laptop/);
  });

  test('bad arguments: one line, exit 2, no stack trace', async () => {
    for (const args of [
      ['topo', '--builtin', 'nope'],
      ['topo', '--sysfs', '/nonexistent/dir'],
      ['topo', '--lspci-tree', join(FIX, 'no-such-tree.txt')],
      ['topo', '--builtin', 'laptop', '--sysfs', '/sys'],
    ]) {
      const { status, stderr } = await captureCli(args);
      expect(status, args.join(' ')).toBe(2);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toMatch(/^physr: /);
      expect(stderr).not.toContain('    at ');
    }
  });

  test('--help', async () => {
    const { stdout } = await captureCli(['topo', '--help']);
    expect(stdout).toContain('--lspci-verbose');
  });
});

describe('physr p2p', () => {
  test('built-ins answer to the scenario platform names and devices to the scenario labels', async () => {
    const { status, stdout } = await captureCli(['p2p', '--builtin', 'x86-2s', 'gpu0', 'nic0', 'nic1']);
    expect(status).toBe(0);
    expect(stdout).toContain('topology: built-in x86-2s');
    // Booted as Linux boots with VT-d: ACS redirect on the switch ports sends GPU<->NIC upstream.
    expect(stdout).toContain('0000:03:00.0 -> 0000:04:00.0: through-host-bridge');
    expect(stdout).toContain('0000:03:00.0 -> 0000:81:00.0: through-host-bridge');
    const off = await captureCli([
      'p2p',
      '--builtin',
      'x86-2s',
      '--cmdline',
      'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
      'gpu0',
      'nic0',
    ]);
    expect(off.stdout).toContain(
      'topology: built-in x86-2s booted with pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
    );
    expect(off.stdout).toContain('0000:03:00.0 -> 0000:04:00.0: bus-address');
    const bad = await captureCli(['p2p', '--builtin', 'x86-2s', 'gpu9', 'nic0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/ENODEV: "gpu9" .*labels: gpu0=03:00\.0 nic0=04:00\.0/);
  });

  test('switch-local pair with ACS redirect off below the switch, hop by hop', async () => {
    const { status, stdout } = await captureCli(['p2p', '0000:83:00.0', '84:00.0', ...LSPCI]);
    expect(status).toBe(0);
    expect(stdout).toContain('0000:83:00.0 -> 0000:84:00.0:');
    expect(stdout).toMatch(/common upstream: 0000:81:00\.0/);
    expect(stdout).toMatch(/reason: /);
    expect(stdout).toMatch(/provider-side +0000:83:00\.0/);
  });

  test('several clients, JSON', async () => {
    const { status, stdout } = await captureCli([
      'p2p',
      '0000:83:00.0',
      '0000:84:00.0',
      '0000:01:00.0',
      ...LSPCI,
      '--json',
    ]);
    expect(status).toBe(0);
    const json = JSON.parse(stdout);
    expect(json.decisions).toHaveLength(2);
    expect(json.decisions[1].commonUpstream).toBeNull();
    expect(['not-supported', 'through-host-bridge']).toContain(json.decisions[1].mapType);
  });

  test('unknown device: one line, exit 2', async () => {
    const { status, stderr } = await captureCli(['p2p', '0000:99:00.0', '0000:84:00.0', ...LSPCI]);
    expect(status).toBe(2);
    expect(stderr).toMatch(/^physr: ENODEV: no PCI function 0000:99:00\.0/);
    const bad = await captureCli(['p2p', 'gpu-x', '0000:84:00.0', ...LSPCI]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/neither a PCI address/);
  });

  test('--help', async () => {
    const { stdout } = await captureCli(['p2p', '--help']);
    expect(stdout).toContain('[provider]');
    expect(stdout).toContain('--matrix');
  });
});

describe('physr p2p --matrix --html', () => {
  test('writes the page with the matrix grid: a decision for each ordered pair of the chosen devices', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'physr-p2p-')), 'matrix.html');
    const argv = [
      'p2p',
      '--matrix',
      '--builtin',
      'x86-2s',
      '--cmdline',
      'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
    ];
    const { status, stdout } = await captureCli([...argv, '--html', out]);
    expect(status).toBe(0);
    expect(stdout).toContain('Legend');
    const doc = JSON.parse(
      /<script type="application\/json" id="physr-data">(.*?)<\/script>/s.exec(
        readFileSync(out, 'utf8'),
      )![1]!,
    );
    // x86-2s's matrix devices: gpu0, nic0, nvme0, nic1 — 4 x 3 ordered pairs.
    expect(doc.p2pMatrix.decisions).toHaveLength(12);
    const gpuToNic = doc.p2pMatrix.decisions.find(
      (d: { provider: string; client: string }) =>
        d.provider === '0000:03:00.0' && d.client === '0000:04:00.0',
    );
    // With the switch's redirect cleared by the kernel parameter, the pair stays below the switch.
    expect(gpuToNic).toMatchObject({ mapType: 'bus-address', distance: 4 });
    expect(doc.topology.labels.nic0).toBe('0000:04:00.0');
  });

  test('--html without --matrix, or into a missing directory, is a usage error before any work', async () => {
    const alone = await captureCli([
      'p2p',
      '--builtin',
      'x86-2s',
      'gpu0',
      'nic0',
      '--html',
      join(tmpdir(), 'x.html'),
    ]);
    expect(alone.status).toBe(2);
    expect(alone.stderr).toMatch(/--html goes with --matrix/);
    const missing = await captureCli([
      'p2p',
      '--matrix',
      '--builtin',
      'x86-2s',
      '--html',
      join(tmpdir(), 'no-such-dir-physr', 'm.html'),
    ]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/ENOENT: --html .*does not exist/);
  });
});

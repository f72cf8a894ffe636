/** `physr topo` and `physr p2p` through runCli, stdout/stderr captured. */
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { runCli } from '../../src/cli/program.ts';

const FIX = join(import.meta.dirname, '..', 'platform', 'fixtures');
const LSPCI = [
  '--lspci-tree',
  join(FIX, 'lspci-server-tree.txt'),
  '--lspci-verbose',
  join(FIX, 'lspci-server-verbose.txt'),
];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  const code = await runCli(args);
  vi.restoreAllMocks();
  return { code, out, err };
}
afterEach(() => vi.restoreAllMocks());

describe('physr topo', () => {
  test('on this machine’s live /sys: says what it found, then the tree', async () => {
    const { code, out } = await run(['topo']);
    expect(code).toBe(0);
    expect(out).toMatch(/^read \d+ PCI functions? under \d+ host bridges? from \/sys/);
    expect(out).toContain('CPU: ');
  });

  test('from lspci text: bridges, BARs in kernel sizes, ACS flags, groups', async () => {
    const { code, out } = await run(['topo', ...LSPCI]);
    expect(code).toBe(0);
    expect(out).toMatch(/^read 14 PCI functions under 2 host bridges from lspci text/);
    expect(out).toContain('0000:82:00.0 switch-downstream [10b5:8796]');
    expect(out).toContain('BAR1 0x38000000000 [size=64G] 64-bit pref');
    expect(out).toContain(
      'ACSCtl: SrcValid+ TransBlk- ReqRedir- CmpltRedir- UpstreamFwd+ EgressCtrl- DirectTrans-',
    );
    expect(out).toContain('IOMMU group: 45 (reported)');
    // The GPU sits two levels below the root port, indented under its switch port.
    expect(out).toMatch(/\n {6}0000:82:00\.0[^\n]*\n(?: {10}[^\n]*\n)*? {8}0000:83:00\.0/);
  });

  test('--json keeps 64-bit addresses exact', async () => {
    const { code, out } = await run(['topo', ...LSPCI, '--json']);
    expect(code).toBe(0);
    const json = JSON.parse(out);
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
    const { code, out } = await run(['topo', '--builtin', 'laptop']);
    expect(code).toBe(0);
    expect(out).toMatch(/^read \d+ PCI functions under 1 host bridge from built-in laptop/);
  });

  test('bad arguments: one line, exit 2, no stack trace', async () => {
    for (const args of [
      ['topo', '--builtin', 'nope'],
      ['topo', '--sysfs', '/nonexistent/dir'],
      ['topo', '--lspci-tree', join(FIX, 'lspci-server-tree.txt')],
      ['topo', '--builtin', 'laptop', '--sysfs', '/sys'],
    ]) {
      const { code, err } = await run(args);
      expect(code, args.join(' ')).toBe(2);
      expect(err.trim().split('\n')).toHaveLength(1);
      expect(err).toMatch(/^physr: /);
      expect(err).not.toContain('    at ');
    }
  });

  test('--help', async () => {
    const { out } = await run(['topo', '--help']);
    expect(out).toContain('--lspci-verbose');
  });
});

describe('physr p2p', () => {
  test('built-ins answer to the scenario platform names and devices to the scenario labels', async () => {
    const { code, out } = await run(['p2p', '--builtin', 'x86-2s', 'gpu0', 'nic0', 'nic1']);
    expect(code).toBe(0);
    expect(out).toContain('topology: built-in two-socket-server');
    expect(out).toContain('0000:03:00.0 -> 0000:04:00.0: bus-address');
    expect(out).toContain('0000:03:00.0 -> 0000:81:00.0: through-host-bridge');
    const acs = await run(['p2p', '--builtin', 'x86-2s-acs', 'gpu0', 'nic0']);
    expect(acs.out).toContain('0000:03:00.0 -> 0000:04:00.0: through-host-bridge');
    const bad = await run(['p2p', '--builtin', 'x86-2s', 'gpu9', 'nic0']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/ENODEV: "gpu9" .*labels: gpu0=03:00\.0 nic0=04:00\.0/);
  });

  test('switch-local pair with ACS redirect off below the switch, hop by hop', async () => {
    const { code, out } = await run(['p2p', '0000:83:00.0', '84:00.0', ...LSPCI]);
    expect(code).toBe(0);
    expect(out).toContain('0000:83:00.0 -> 0000:84:00.0:');
    expect(out).toMatch(/common upstream: 0000:81:00\.0/);
    expect(out).toMatch(/reason: /);
    expect(out).toMatch(/provider-side +0000:83:00\.0/);
  });

  test('several clients, JSON', async () => {
    const { code, out } = await run([
      'p2p',
      '0000:83:00.0',
      '0000:84:00.0',
      '0000:01:00.0',
      ...LSPCI,
      '--json',
    ]);
    expect(code).toBe(0);
    const json = JSON.parse(out);
    expect(json.decisions).toHaveLength(2);
    expect(json.decisions[1].commonUpstream).toBeNull();
    expect(['not-supported', 'through-host-bridge']).toContain(json.decisions[1].mapType);
  });

  test('unknown device: one line, exit 2', async () => {
    const { code, err } = await run(['p2p', '0000:99:00.0', '0000:84:00.0', ...LSPCI]);
    expect(code).toBe(2);
    expect(err).toMatch(/^physr: ENODEV: no PCI function 0000:99:00\.0/);
    const bad = await run(['p2p', 'gpu-x', '0000:84:00.0', ...LSPCI]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/neither a PCI address/);
  });

  test('--help', async () => {
    const { out } = await run(['p2p', '--help']);
    expect(out).toContain('<provider>');
  });
});

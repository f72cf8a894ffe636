/**
 * The sysfs importer against hwloc's real captures: the PCI tree physr builds must match the one
 * hwloc's lstopo built from the same snapshot (its `.console` / `.xml` expected output).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importSysfs, type PciTopology } from '../../src/platform/index.ts';

const CAPTURES = fileURLToPath(new URL('../../../shared/data/captures/hwloc-sysfs', import.meta.url));
const MACHINES = [
  { tarball: '2pa-pcidomain32bits', dir: '2pa-pcidomain32bits', expected: '2pa-pcidomain32bits.console' },
  {
    tarball: '40intel64-2g2n4c+pcilocality',
    dir: '40intel64-2g2n4c+pci',
    expected: '40intel64-2g2n4c+pcilocality.xml',
  },
  {
    tarball: '40intel64-4n10c+pci-conflicts',
    dir: '40intel64-4n10c+pci-conflicts',
    expected: '40intel64-4n10c+pci-conflicts.console',
  },
] as const;

interface HwlocNode {
  readonly type: 'host' | 'bridge' | 'device';
  readonly busid: string | undefined;
  readonly id: string | undefined;
  readonly domain: number;
  readonly buses: readonly [number, number] | undefined;
  /** The enclosing bridge's busid, or `host:DDDD:SS` for a host bridge. */
  readonly parent: string | undefined;
}

const hexNum = (s: string): number => Number.parseInt(s, 16);

/** Lines of lstopo text or XML; nesting follows indentation in both. */
function parseHwloc(text: string, xml: boolean): HwlocNode[] {
  const nodes: HwlocNode[] = [];
  const stack: { indent: number; key: string }[] = [];
  for (const line of text.split('\n')) {
    let type: HwlocNode['type'] | undefined;
    let busid: string | undefined;
    let id: string | undefined;
    let buses: readonly [number, number] | undefined;
    let domain = 0;
    if (xml) {
      const m = /<object type="(Bridge|PCIDev)"/.exec(line);
      if (m === null) continue;
      const attr = (name: string): string | undefined => new RegExp(` ${name}="([^"]*)"`).exec(line)?.[1];
      type = m[1] === 'PCIDev' ? 'device' : attr('bridge_type') === '0-1' ? 'host' : 'bridge';
      const range = /^([0-9a-f]+):\[([0-9a-f]+)-([0-9a-f]+)\]$/.exec(attr('bridge_pci') ?? '');
      if (range !== null) {
        domain = hexNum(range[1]!);
        buses = [hexNum(range[2]!), hexNum(range[3]!)];
      }
      busid = attr('pci_busid');
      id = /\[([0-9a-f]{4}:[0-9a-f]{4})\]/.exec(attr('pci_type') ?? '')?.[1];
    } else {
      const host = /HostBridge L#\d+ \(buses=([0-9a-f]+):\[([0-9a-f]+)-([0-9a-f]+)\]\)/.exec(line);
      const dev = /(PCIBridge|PCI) L#\d+ \(busid=([^ ]+) id=([0-9a-f]{4}:[0-9a-f]{4})/.exec(line);
      const range = / buses=([0-9a-f]+):\[([0-9a-f]+)-([0-9a-f]+)\]/.exec(line);
      if (host !== null) {
        type = 'host';
        domain = hexNum(host[1]!);
        buses = [hexNum(host[2]!), hexNum(host[3]!)];
      } else if (dev !== null) {
        type = dev[1] === 'PCIBridge' ? 'bridge' : 'device';
        busid = dev[2];
        id = dev[3];
        if (range !== null) buses = [hexNum(range[2]!), hexNum(range[3]!)];
      } else continue;
    }
    const indent = line.length - line.trimStart().length;
    while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
    if (busid !== undefined) domain = hexNum(busid.split(':')[0]!);
    const node: HwlocNode = { type, busid, id, domain, buses, parent: stack.at(-1)?.key };
    nodes.push(node);
    if (type !== 'device')
      stack.push({ indent, key: type === 'host' ? `host:${domain}:${buses![0]}` : busid! });
  }
  return nodes;
}

/** Our parent of a function in hwloc's terms (the bridge's busid, or its host bridge). */
function ourParentKey(topology: PciTopology, bdf: string): string | undefined {
  const f = topology.functions.get(bdf);
  if (f === undefined) return undefined;
  if (f.parent !== undefined) return f.parent;
  const host = topology.hostBridges.find((h) => h.id === f.hostBridge)!;
  return `host:${host.segment}:${host.busStart}`;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'physr-hwloc-'));
  for (const m of MACHINES) execFileSync('tar', ['xjf', join(CAPTURES, `${m.tarball}.tar.bz2`), '-C', work]);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(MACHINES)('hwloc capture $tarball', (machine) => {
  const expectedNodes = (): HwlocNode[] =>
    parseHwloc(readFileSync(join(CAPTURES, machine.expected), 'utf8'), machine.expected.endsWith('.xml'));

  test('host bridges, bridges and devices match hwloc', () => {
    const { topology } = importSysfs(join(work, machine.dir));
    const expected = expectedNodes();
    const hosts = expected.filter((n) => n.type === 'host');
    expect(hosts.length).toBeGreaterThan(0);
    expect(topology.hostBridges.map((h) => [h.segment, h.busStart, h.busEnd])).toEqual(
      hosts.map((h) => [h.domain, h.buses![0], h.buses![1]]),
    );
    let checked = 0;
    for (const node of expected.filter((n) => n.type !== 'host')) {
      const f = topology.functions.get(node.busid!);
      expect(f, node.busid).toBeDefined();
      const hex4 = (v: number | undefined): string => (v ?? -1).toString(16).padStart(4, '0');
      expect(`${hex4(f!.vendorId)}:${hex4(f!.deviceId)}`).toBe(node.id);
      expect(ourParentKey(topology, node.busid!), node.busid).toBe(node.parent);
      if (node.type === 'bridge') {
        expect([f!.secondaryBus, f!.subordinateBus]).toEqual(node.buses);
        expect(f!.kind).not.toBe('endpoint');
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });

  test('64-byte config: ACS unknown with the reason, absent only for a conventional function', () => {
    const { topology, notes } = importSysfs(join(work, machine.dir));
    let unknown = 0;
    for (const f of topology.functions.values()) {
      const config = readFileSync(join(work, machine.dir, 'sys/bus/pci/devices', f.bdf, 'config'));
      // Status bit 4 clear: no capability list, so no Express capability and no extended space
      // (pci_cfg_space_size); a host bridge may still have one.
      const conventional = (config[6]! & 0x10) === 0 && f.kind !== 'host-bridge-device';
      if (conventional) {
        expect(f.acs, f.bdf).toEqual({ kind: 'absent' });
      } else {
        expect(f.acs, f.bdf).toEqual({
          kind: 'unknown',
          why: 'config has 64 bytes; extended capabilities absent',
        });
        unknown++;
      }
    }
    expect(unknown).toBeGreaterThan(0);
    expect(notes.filter((n) => n.what === 'acs')).toHaveLength(unknown);
  });

  test('rebuilding the hierarchy from bus numbers gives the same tree as the sysfs paths', () => {
    const byPath = importSysfs(join(work, machine.dir)).topology;
    const byBus = importSysfs(join(work, machine.dir), { hierarchy: 'bus-numbers' }).topology;
    expect([...byBus.functions.values()].map((f) => [f.bdf, f.parent, f.hostBridge])).toEqual(
      [...byPath.functions.values()].map((f) => [f.bdf, f.parent, f.hostBridge]),
    );
    expect(byBus.hostBridges).toEqual(byPath.hostBridges);
  });

  test('plain folders (no links into sys/devices) still give hwloc’s tree', () => {
    const plain = join(work, `${machine.dir}-plain`);
    const source = join(work, machine.dir, 'sys', 'bus', 'pci', 'devices');
    for (const bdf of readdirSync(source)) {
      const to = join(plain, 'sys', 'bus', 'pci', 'devices', bdf);
      mkdirSync(to, { recursive: true });
      for (const file of ['vendor', 'device', 'class', 'config', 'resource', 'numa_node']) {
        if (existsSync(join(source, bdf, file))) copyFileSync(join(source, bdf, file), join(to, file));
      }
    }
    const { topology } = importSysfs(plain);
    for (const node of expectedNodes().filter((n) => n.type !== 'host')) {
      expect(ourParentKey(topology, node.busid!), node.busid).toBe(node.parent);
    }
    expect(topology.cpu.vendor).toBe('unknown');
  });

  test('CPU vendor and family from the capture’s proc/cpuinfo', () => {
    const { topology } = importSysfs(join(work, machine.dir));
    expect(topology.cpu).toEqual({ vendor: 'intel', family: 6 });
  });
});

describe('hwloc capture details', () => {
  test('resource lines become BARs with CPU addresses, sizes and flags', () => {
    const { topology } = importSysfs(join(work, '40intel64-2g2n4c+pci'));
    const raid = topology.functions.get('0000:01:00.0')!;
    expect(raid.bars).toEqual([
      { index: 0, cpuAddress: 0x7c00n, size: 256n, prefetchable: false, is64: false, io: true },
      { index: 1, cpuAddress: 0xcf1bc000n, size: 0x4000n, prefetchable: false, is64: true, io: false },
      { index: 3, cpuAddress: 0xcf1c0000n, size: 0x40000n, prefetchable: false, is64: true, io: false },
    ]);
    // Bus addresses in config equal the resource addresses here: x86 has no CPU-to-bus offset.
    expect(topology.hostBridges.map((h) => h.busOffset)).toEqual([0n, 0n]);
    expect(topology.functions.get('0000:43:00.0')!.numaNode).toBe(2);
    expect(topology.functions.get('0000:02:00.1')!.multifunction).toBe(true);
  });

  test('a 32-bit PCI domain keeps its number', () => {
    const { topology } = importSysfs(join(work, '2pa-pcidomain32bits'));
    const host = topology.hostBridges.find((h) => h.segment === 0x10000)!;
    expect(host.id).toBe('pci10000:00');
    expect(topology.functions.get('10000:00:04.0')!.hostBridge).toBe('pci10000:00');
  });
});

/**
 * Target 5: calc_map_type_and_dist (drivers/pci/p2pdma.c, extracted by name with the host-bridge
 * allowlist table) against src/platform/p2pdma.ts, over random PCI trees (root ports, switches,
 * PCI bridges, endpoints; ACS capability and control values; host-bridge vendor/device IDs, with or
 * without a 00.0 host-bridge function) and CPU vendors and families. Compared: the map type and the
 * distance of random provider/client pairs.
 */
import { join } from 'node:path';
import type { SeededRandom } from '../../../src/core/index.ts';
import {
  type AcsState,
  acsBitsToRegister,
  acsKnown,
  buildTopology,
  type CpuInfo,
  calcP2pDecision,
  type FunctionSpec,
  type HostBridgeSpec,
  type PciTopology,
} from '../../../src/platform/index.ts';
import {
  C_DIR,
  type DiffTarget,
  extractBlock,
  extractFunctions,
  gcc,
  type KnownDifference,
  writeGenerated,
} from '../harness.ts';

export interface P2pCase {
  readonly topology: PciTopology;
  readonly pairs: readonly (readonly [string, string])[];
}

/** Host-bridge (or root-port) IDs: allowlisted, allowlisted only under one bridge, and unlisted. */
const BRIDGE_IDS: readonly (readonly [number, number])[] = [
  [0x8086, 0x2030],
  [0x8086, 0x09a2],
  [0x8086, 0x3c00],
  [0x8086, 0x2f01],
  [0x8086, 0x1234],
  [0x1022, 0x1480],
  [0x10de, 0x22b1],
];

const CPUS: readonly CpuInfo[] = [
  { vendor: 'intel', family: 6 },
  { vendor: 'amd', family: 0x17 },
  { vendor: 'amd', family: 0x19 },
  { vendor: 'amd', family: 0x15 },
  { vendor: 'arm', family: undefined },
  { vendor: 'unknown', family: undefined },
];

function randomAcs(rng: SeededRandom, chance: number): AcsState | undefined {
  if (rng.next() >= chance) return undefined;
  const cap = rng.int(0, 0x7f);
  // Control bits mostly within the capability, sometimes not (the register is what is read).
  const ctrl = rng.next() < 0.5 ? 0 : rng.next() < 0.8 ? rng.int(0, 0x7f) & cap : rng.int(0, 0x7f);
  return acsKnown(cap, ctrl);
}

function withAcs(spec: FunctionSpec, acs: AcsState | undefined): FunctionSpec {
  return acs ? { ...spec, acs } : spec;
}

/**
 * What sits below a bridge. Below a PCIe port (a link) only device 0 exists: a switch alone, or
 * endpoints as its functions; below a conventional PCI bridge, devices 0, 1, 2.
 */
function randomBelow(rng: SeededRandom, depth: number, link: boolean): FunctionSpec[] {
  const r = rng.next();
  if (link && depth < 3 && r < 0.3) {
    const ports = Array.from({ length: rng.int(1, 3) }, (_, p) =>
      withAcs(
        { kind: 'switch-downstream', device: p, children: randomBelow(rng, depth + 1, true) } as FunctionSpec,
        randomAcs(rng, 0.6),
      ),
    );
    return [withAcs({ kind: 'switch-upstream', device: 0, children: ports }, randomAcs(rng, 0.3))];
  }
  if (depth < 3 && r < 0.4) {
    const children = randomBelow(rng, depth + 1, false);
    return [withAcs({ kind: 'pci-bridge', device: 0, children }, randomAcs(rng, 0.2))];
  }
  const n = rng.int(1, 3);
  return Array.from({ length: n }, (_, i) =>
    withAcs(
      link ? { kind: 'endpoint', device: 0, function: i } : { kind: 'endpoint', device: i },
      randomAcs(rng, 0.15),
    ),
  );
}

function generate(rng: SeededRandom): P2pCase {
  const nb = rng.int(1, 3);
  const hostBridges: HostBridgeSpec[] = [];
  for (let b = 0; b < nb; b++) {
    const [vendorId, deviceId] = rng.pick(BRIDGE_IDS);
    const children: FunctionSpec[] = [];
    // Sometimes an RC-integrated endpoint comes first on the root bus (then no allowlist entry applies).
    if (rng.next() < 0.1) children.push({ kind: 'rc-integrated-endpoint', device: 1 });
    const ports = rng.int(1, 3);
    for (let p = 0; p < ports; p++) {
      const [pv, pd] = rng.pick(BRIDGE_IDS);
      children.push(
        withAcs(
          {
            kind: 'root-port',
            device: 2 + p,
            vendorId: pv,
            deviceId: pd,
            children: randomBelow(rng, 1, true),
          },
          randomAcs(rng, 0.6),
        ),
      );
    }
    hostBridges.push({
      segment: 0,
      busStart: b * 0x40,
      busEnd: b * 0x40 + 0x3f,
      vendorId,
      deviceId,
      hostBridgeDevice: rng.next() < 0.8,
      children,
    });
  }
  const topology = buildTopology({ cpu: rng.pick(CPUS), hostBridges });
  const endpoints = [...topology.functions.values()]
    .filter((f) => f.kind === 'endpoint' || f.kind === 'rc-integrated-endpoint')
    .map((f) => f.bdf);
  const all = [...topology.functions.keys()];
  const pairs: [string, string][] = [];
  for (let i = rng.int(1, 6); i > 0; i--) {
    const pick = () => (rng.next() < 0.9 && endpoints.length > 0 ? rng.pick(endpoints) : rng.pick(all));
    pairs.push([pick(), pick()]);
  }
  return { topology, pairs };
}

function encode(c: P2pCase): string {
  const t = c.topology;
  // Scan order: BDF text sorts by segment, bus, device, function.
  const bdfs = [...t.functions.keys()].sort();
  const index = new Map(bdfs.map((b, i) => [b, i]));
  const bridges = t.hostBridges.map((h) => h.id);
  const cpuVendor = t.cpu.vendor === 'intel' ? 0 : t.cpu.vendor === 'amd' ? 2 : 0xff;
  const devs = bdfs.map((bdf) => {
    const f = t.functions.get(bdf)!;
    const [dev, fn] = bdf.slice(-4).split('.') as [string, string];
    const devfn = (Number.parseInt(dev, 16) << 3) | Number.parseInt(fn, 10);
    const acs = f.acs.kind === 'known' ? `1 ${acsBitsToRegister(f.acs.control)}` : '0 0';
    const parent = f.parent === undefined ? -1 : index.get(f.parent)!;
    return `${parent} ${bridges.indexOf(f.hostBridge)} ${devfn} ${f.kind === 'root-port' ? 1 : 0} ${f.vendorId ?? 0} ${f.deviceId ?? 0} ${acs}`;
  });
  const pairs = c.pairs.map(([p, q]) => `${index.get(p)} ${index.get(q)}`);
  return [cpuVendor, t.cpu.family ?? 0, bridges.length, bdfs.length, ...devs, c.pairs.length, ...pairs].join(
    ' ',
  );
}

function model(c: P2pCase): string {
  return c.pairs
    .map(([p, q]) => {
      const d = calcP2pDecision(c.topology, p, q);
      return `${d.mapType} ${d.distance}`;
    })
    .join(',');
}

const KNOWN: readonly KnownDifference[] = [
  {
    release: 'after 6.12',
    rule: 'Google SoC host bridges (vendor 0x1ae0, any device) are on the P2PDMA allowlist in the model (7.1)',
    checkedBy: 'the generator never uses vendor 0x1ae0, and 6.12 p2pdma.c is checked to lack it',
    check(tree) {
      const table = extractBlock(join(tree.root, 'drivers/pci/p2pdma.c'), /pci_p2pdma_whitelist_entry \{/);
      return /0x1ae0|PCI_VENDOR_ID_GOOGLE/i.test(table) && tree.release === '6.12'
        ? '6.12 p2pdma.c lists Google host bridges: the generator should use them'
        : undefined;
    },
  },
];

const EXTRACTED = [
  'pci_bridge_has_acs_redir',
  'seq_buf_print_bus_devfn',
  'cpu_supports_p2pdma',
  'pci_host_bridge_dev',
  '__host_bridge_whitelist',
  'host_bridge_whitelist',
  'map_types_idx',
  'calc_map_type_and_dist',
];

export const p2pdmaTarget: DiffTarget<P2pCase> = {
  name: 'p2pdma',
  files: ['drivers/pci/p2pdma.c'],
  cases: { ci: 2000, thorough: 50_000 },
  knownDifferences: KNOWN,
  build(tree, outDir) {
    const file = join(tree, 'drivers/pci/p2pdma.c');
    writeGenerated(
      outDir,
      'p2pdma-extracted.c',
      extractBlock(file, /pci_p2pdma_whitelist_entry \{/) + extractFunctions(file, EXTRACTED),
    );
    return gcc(
      [`-I${join(C_DIR, 'p2pdma')}`, `-I${outDir}`, join(C_DIR, 'p2pdma/driver.c')],
      outDir,
      'p2pdma',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};

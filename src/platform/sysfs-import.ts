/**
 * Import a PCI topology from a sysfs tree: the live /sys, or a snapshot laid out like it (hwloc's
 * test captures hold `sys/` and `proc/` side by side). Files read per function, as
 * drivers/pci/pci-sysfs.c writes them: `vendor`, `device`, `class`, `config`, `resource`,
 * `numa_node`, `label`, the `iommu_group` link; and `kernel/iommu_groups/N/devices/`.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fail, type SourceLocation } from '../core/index.ts';
import {
  assembleTopology,
  type FunctionFacts,
  hostBridgeId,
  type ImportNote,
  parentsFromBusNumbers,
  parseCpuInfo,
  type TopologyImport,
  UNKNOWN_CPU,
} from './capture-import.ts';
import { parseBdfParts, tryParseBdfParts } from './pci-bdf.ts';
import { type DecodedConfig, decodeConfig, functionKind } from './pci-config.ts';
import type { AcsState, Bdf, PciBar } from './pci-types.ts';

/** struct resource flags the `resource` file shows (include/linux/ioport.h). */
export const IORESOURCE_IO = 0x100n;
export const IORESOURCE_MEM = 0x200n;
export const IORESOURCE_PREFETCH = 0x2000n;
export const IORESOURCE_MEM_64 = 0x10_0000n;

/** Standard BARs are resources 0..5 (PCI_STD_RESOURCES); ROM and bridge windows follow. */
const STD_BARS = 6;

export interface SysfsImportOptions {
  /**
   * `auto`: the parent of each function from its real sysfs path (`devices/pci0000:00/<bridge>/<fn>`)
   * when every device entry is such a link, else from bus numbers. `bus-numbers`: always rebuild from
   * the bridges' secondary/subordinate bus numbers (what hwloc does).
   */
  readonly hierarchy?: 'auto' | 'bus-numbers';
}

const RESOURCE_LINE = /^0x([0-9a-f]{1,16}) 0x([0-9a-f]{1,16}) 0x([0-9a-f]{1,16})$/i;

/** Parses a `resource` file into BARs (CPU physical addresses). */
export function parseResourceFile(text: string, file: string): PciBar[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const bars: PciBar[] = [];
  for (let index = 0; index < STD_BARS; index++) {
    const line = lines[index];
    const location: SourceLocation = { file, line: index + 1 };
    if (line === undefined) {
      fail(
        'EINVAL',
        `expected "0x... 0x... 0x..." (start end flags) for BAR ${index}; the file ends after ${lines.length} lines (truncated?)`,
        location,
      );
    }
    const match = RESOURCE_LINE.exec(line.trim());
    if (match === null) {
      fail('EINVAL', `expected "0x... 0x... 0x..." (start end flags), found "${line}"`, location);
    }
    const start = BigInt(`0x${match[1]}`);
    const end = BigInt(`0x${match[2]}`);
    const flags = BigInt(`0x${match[3]}`);
    if (start === 0n && end === 0n) continue;
    if (end < start) fail('EINVAL', `resource end 0x${match[2]} is below its start 0x${match[1]}`, location);
    const io = (flags & IORESOURCE_IO) !== 0n;
    if (!io && (flags & IORESOURCE_MEM) === 0n) continue;
    bars.push({
      index,
      cpuAddress: start,
      size: end - start + 1n,
      prefetchable: (flags & IORESOURCE_PREFETCH) !== 0n,
      is64: (flags & IORESOURCE_MEM_64) !== 0n,
      io,
    });
  }
  return bars;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A sysfs attribute holding one hex number (`vendor`, `device`, `class`). */
function readHexAttribute(dir: string, name: string): number | undefined {
  const path = join(dir, name);
  const text = readText(path);
  if (text === undefined) return undefined;
  const value = text.trim();
  if (!/^0x[0-9a-f]{1,8}$/i.test(value)) {
    fail('EINVAL', `expected a hex number like 0x8086, found "${value}"`, { file: path, line: 1 });
  }
  return Number.parseInt(value.slice(2), 16);
}

function readNumaNode(dir: string): number | undefined {
  const path = join(dir, 'numa_node');
  const text = readText(path);
  if (text === undefined) return undefined;
  const value = text.trim();
  if (!/^-?\d+$/.test(value))
    fail('EINVAL', `expected a NUMA node number or -1, found "${value}"`, { file: path, line: 1 });
  const node = Number.parseInt(value, 10);
  return node < 0 ? undefined : node;
}

function readConfig(dir: string, bdf: Bdf, notes: ImportNote[]): DecodedConfig | undefined {
  const path = join(dir, 'config');
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
    notes.push({ bdf, what: 'config', why: `config space not readable (${code})` });
    return undefined;
  }
  return decodeConfig(bytes, { file: path });
}

function readIommuGroupLink(dir: string): number | undefined {
  try {
    const target = readlinkSync(join(dir, 'iommu_group'));
    const group = Number.parseInt(basename(target), 10);
    return Number.isNaN(group) ? undefined : group;
  } catch {
    return undefined;
  }
}

/** `kernel/iommu_groups/N/devices/BDF` → group per BDF. */
function readIommuGroups(sysRoot: string): Map<Bdf, number> {
  const groups = new Map<Bdf, number>();
  const root = join(sysRoot, 'kernel', 'iommu_groups');
  if (!existsSync(root)) return groups;
  for (const name of readdirSync(root)) {
    const group = Number.parseInt(name, 10);
    if (Number.isNaN(group)) continue;
    const devices = join(root, name, 'devices');
    if (!existsSync(devices)) continue;
    for (const bdf of readdirSync(devices)) if (tryParseBdfParts(bdf)) groups.set(bdf.toLowerCase(), group);
  }
  return groups;
}

/**
 * From a device link's real path (`.../devices/pci0000:00/0000:00:03.0/0000:01:00.0`), the host
 * bridge and the parent bridge. Undefined when the entry is a plain folder or the path has no root bus.
 */
function placementFromPath(entry: string): { host: string; parent: Bdf | undefined } | undefined {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(entry);
  } catch {
    return undefined;
  }
  if (!stat.isSymbolicLink()) return undefined;
  const target = resolve(dirname(entry), readlinkSync(entry));
  const parts = target.split(sep).filter((p) => p !== '');
  const rootIndex = parts.findIndex((p) => /^pci[0-9a-f]{4,8}:[0-9a-f]{2}$/i.test(p));
  if (rootIndex < 0) return undefined;
  const chain = parts.slice(rootIndex + 1).filter((p) => tryParseBdfParts(p) !== undefined);
  if (chain.length === 0) return undefined;
  const root = parts[rootIndex]!.toLowerCase();
  // sysfs names the root bus `pciDDDD:BB`; keep our canonical 4-digit-minimum form.
  const match = /^pci([0-9a-f]+):([0-9a-f]{2})$/.exec(root)!;
  return {
    host: hostBridgeId(Number.parseInt(match[1]!, 16), Number.parseInt(match[2]!, 16)),
    parent: chain.length >= 2 ? chain.at(-2)!.toLowerCase() : undefined,
  };
}

/** Finds `sys/` and `proc/` for a capture directory or a /sys-like directory. */
function locateRoots(dir: string): { sysRoot: string; procRoot: string } {
  if (!existsSync(dir)) fail('ENOENT', `${dir}: no such directory`, { file: dir });
  if (existsSync(join(dir, 'sys', 'bus')) || existsSync(join(dir, 'sys', 'devices'))) {
    return { sysRoot: join(dir, 'sys'), procRoot: join(dir, 'proc') };
  }
  if (existsSync(join(dir, 'bus')) || existsSync(join(dir, 'devices'))) {
    return { sysRoot: dir, procRoot: join(resolve(dir), '..', 'proc') };
  }
  fail(
    'EINVAL',
    `expected a directory laid out like /sys (bus/pci/devices) or a capture holding sys/ and proc/`,
    {
      file: dir,
    },
  );
}

/** Imports the PCI topology of a sysfs tree. */
export function importSysfs(dir: string, options: SysfsImportOptions = {}): TopologyImport {
  const { sysRoot, procRoot } = locateRoots(dir);
  const notes: ImportNote[] = [];
  const devicesDir = join(sysRoot, 'bus', 'pci', 'devices');
  const names = existsSync(devicesDir) ? readdirSync(devicesDir).sort() : [];
  if (!existsSync(devicesDir)) {
    notes.push({ bdf: undefined, what: 'pci', why: `${devicesDir} does not exist: no PCI bus exposed` });
  }
  const groups = readIommuGroups(sysRoot);
  const facts: FunctionFacts[] = [];
  const placements = new Map<Bdf, { host: string; parent: Bdf | undefined } | undefined>();
  const configs = new Map<Bdf, DecodedConfig>();
  const resourceBars = new Map<Bdf, PciBar[]>();
  for (const name of names) {
    const entry = join(devicesDir, name);
    const bdf = name.toLowerCase();
    parseBdfParts(bdf, { file: entry, field: 'name' });
    placements.set(bdf, placementFromPath(entry));
    const config = readConfig(entry, bdf, notes);
    if (config !== undefined) configs.set(bdf, config);
    const vendorId = readHexAttribute(entry, 'vendor') ?? config?.vendorId;
    const deviceId = readHexAttribute(entry, 'device') ?? config?.deviceId;
    const classCode = readHexAttribute(entry, 'class') ?? config?.classCode;
    const resourcePath = join(entry, 'resource');
    const resourceText = readText(resourcePath);
    let bars: PciBar[] = [];
    if (resourceText !== undefined) {
      bars = parseResourceFile(resourceText, resourcePath);
      resourceBars.set(bdf, bars);
    } else if (config !== undefined && config.bars.length > 0) {
      const list = config.bars.map((b) => `BAR ${b.index} at bus 0x${b.busAddress.toString(16)}`).join(', ');
      notes.push({ bdf, what: 'bars', why: `no resource file; config shows ${list} but not their sizes` });
    } else if (config === undefined) {
      notes.push({ bdf, what: 'bars', why: 'neither resource nor config readable' });
    }
    let acs: AcsState;
    if (config !== undefined) acs = config.acs;
    else acs = { kind: 'unknown', why: 'config space not readable' };
    if (acs.kind === 'unknown') notes.push({ bdf, what: 'acs', why: acs.why });
    const reportedIommuGroup = readIommuGroupLink(entry) ?? groups.get(bdf);
    const label = readText(join(entry, 'label'))?.trim();
    facts.push({
      bdf,
      kind: functionKind(classCode, config?.headerType, config?.pcieType),
      vendorId,
      deviceId,
      classCode,
      name: label === undefined || label === '' ? undefined : label,
      bars,
      acs,
      multifunction: config?.multifunction,
      secondaryBus: config?.secondaryBus,
      subordinateBus: config?.subordinateBus,
      numaNode: readNumaNode(entry),
      reportedIommuGroup,
    });
  }
  const fromPaths =
    options.hierarchy !== 'bus-numbers' &&
    facts.length > 0 &&
    [...placements.values()].every((p) => p !== undefined);
  let parents: Map<Bdf, Bdf | undefined>;
  const rootHost = new Map<Bdf, string>();
  if (fromPaths) {
    parents = new Map([...placements].map(([bdf, p]) => [bdf, p?.parent]));
    for (const [bdf, p] of placements)
      if (p !== undefined && p.parent === undefined) rootHost.set(bdf, p.host);
  } else {
    parents = parentsFromBusNumbers(facts);
    if (
      facts.some(
        (f) => f.kind !== 'endpoint' && f.kind !== 'host-bridge-device' && f.secondaryBus === undefined,
      )
    ) {
      notes.push({
        bdf: undefined,
        what: 'hierarchy',
        why: 'some bridges have no readable bus numbers; their children may sit on the wrong bus',
      });
    }
  }
  const busOffsets = new Map<string, bigint>();
  const topologyFacts = facts;
  // The CPU-to-bus offset shows where a BAR's resource (CPU address) and register (bus address) differ.
  const hostOfRoot = (bdf: Bdf): string => {
    let cursor: Bdf = bdf;
    for (let depth = 0; depth < 256; depth++) {
      const parent = parents.get(cursor);
      if (parent === undefined || !parents.has(parent)) break;
      cursor = parent;
    }
    const p = parseBdfParts(cursor);
    return rootHost.get(cursor) ?? hostBridgeId(p.segment, p.bus);
  };
  for (const [bdf, bars] of resourceBars) {
    const config = configs.get(bdf);
    if (config === undefined) continue;
    for (const bar of bars) {
      const reg = config.bars.find((b) => b.index === bar.index && !b.io);
      if (bar.io || reg === undefined) continue;
      const host = hostOfRoot(bdf);
      if (!busOffsets.has(host)) busOffsets.set(host, bar.cpuAddress - reg.busAddress);
    }
  }
  const cpuText = readText(join(procRoot, 'cpuinfo'));
  const cpu = cpuText === undefined ? UNKNOWN_CPU : parseCpuInfo(cpuText);
  if (cpuText === undefined)
    notes.push({ bdf: undefined, what: 'cpu', why: 'no proc/cpuinfo in the capture' });
  const topology = assembleTopology(topologyFacts, parents, rootHost, cpu, busOffsets, notes);
  return { topology, source: dir, notes };
}

/**
 * Import a PCI topology from a sysfs tree: the live /sys, or a snapshot laid out like it (hwloc's
 * test captures hold `sys/` and `proc/` side by side). Files read per function, as
 * drivers/pci/pci-sysfs.c writes them: `vendor`, `device`, `class`, `config`, `resource`,
 * `numa_node`, `label`, the `iommu_group` link; and `kernel/iommu_groups/N/devices/`.
 */
import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  type Stats,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fail, readInputText, type SourceLocation } from '../core/index.ts';
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
  /** The running machine's /sys: a missing PCI bus is a note there, an error in a capture. */
  readonly live?: boolean;
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

/** sysfs attributes hold one page at most; a capture file far above that is not an attribute. */
const MAX_ATTRIBUTE_BYTES = 1 << 20;

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** A sysfs attribute's text; undefined when absent, a located error when it is not a regular file. */
function readText(path: string): string | undefined {
  if (statOrUndefined(path) === undefined) return undefined;
  return readInputText(path, 'sysfs attribute', MAX_ATTRIBUTE_BYTES);
}

/** A directory's entries; ENOTDIR (located) when the capture holds a file where sysfs has a directory. */
function listDirectory(path: string, what: string, hint = ''): string[] {
  const stats = statOrUndefined(path);
  if (stats !== undefined && !stats.isDirectory())
    fail('ENOTDIR', `${what} "${path}" is not a directory${hint}`, { file: path });
  try {
    return readdirSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    fail(code === 'EACCES' ? 'EACCES' : 'ENOENT', `${what} "${path}": cannot list (${code})`, { file: path });
  }
}

/** PCI config space is at most 4096 bytes (PCI_CFG_SPACE_EXP_SIZE); read no more than that. */
const CONFIG_SPACE_BYTES = 4096;

function readBoundedBytes(path: string, max: number): Uint8Array {
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const buffer = Buffer.alloc(max);
    let total = 0;
    while (total < max) {
      const n = readSync(fd, buffer, total, max - total, null);
      if (n === 0) break;
      total += n;
    }
    return buffer.subarray(0, total);
  } finally {
    closeSync(fd);
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
  const stats = statOrUndefined(path);
  if (stats !== undefined && !stats.isFile())
    fail('EINVAL', `config "${path}" is not a regular file`, { file: path });
  let bytes: Uint8Array;
  try {
    bytes = readBoundedBytes(path, CONFIG_SPACE_BYTES);
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
  for (const name of listDirectory(root, 'IOMMU groups')) {
    const group = Number.parseInt(name, 10);
    if (Number.isNaN(group)) continue;
    const devices = join(root, name, 'devices');
    if (!existsSync(devices)) continue;
    for (const bdf of listDirectory(devices, `IOMMU group ${name} devices`))
      if (tryParseBdfParts(bdf)) groups.set(bdf.toLowerCase(), group);
  }
  return groups;
}

/** Where a `bus/pci/devices` entry really lives, and the sysfs path it names. */
interface DeviceEntry {
  /** The function's directory (the link itself, or the folder a flattened link names). */
  readonly dir: string;
  /** The real path under `devices/` when the entry is a link (or a file holding a link's text). */
  readonly target: string | undefined;
}

/**
 * Resolves one `bus/pci/devices` entry: a symlink (live /sys, tar captures), a plain folder (hwloc's
 * flat captures), or a small file holding the link's text (captures copied without symlinks, e.g.
 * `../../../devices/pci0000:00/0000:00:05.0`).
 */
function resolveDeviceEntry(entry: string): DeviceEntry {
  const stat = lstatSync(entry);
  if (stat.isSymbolicLink()) return { dir: entry, target: resolve(dirname(entry), readlinkSync(entry)) };
  if (stat.isDirectory()) return { dir: entry, target: undefined };
  if (!stat.isFile() || stat.size > 4096)
    fail('EINVAL', `expected a link or directory for a PCI function, found ${stat.size} bytes`, {
      file: entry,
    });
  const text = readInputText(entry, 'sysfs device entry', 4096).trim();
  const target = resolve(dirname(entry), text);
  if (!/^[./\w:-]+$/.test(text) || statOrUndefined(target)?.isDirectory() !== true) {
    fail(
      'ENOTDIR',
      `a file where sysfs has a link to the function's directory, and "${text}" names no directory of the capture`,
      { file: entry, line: 1 },
    );
  }
  return { dir: target, target };
}

interface PathPlacement {
  readonly host: string;
  /** BDFs from the root bus down to the function's parent (the function itself excluded). */
  readonly ancestors: readonly Bdf[];
}

/**
 * From a function's real sysfs path (`.../devices/pci0000:00/0000:00:03.0/0000:01:00.0`), its host
 * bridge and the bridges above it. Undefined when the path has no root bus.
 */
function placementFromPath(target: string | undefined): PathPlacement | undefined {
  if (target === undefined) return undefined;
  const parts = target.split(sep).filter((p) => p !== '');
  const rootIndex = parts.findIndex((p) => /^pci[0-9a-f]{4,8}:[0-9a-f]{2}$/i.test(p));
  if (rootIndex < 0) return undefined;
  const chain = parts
    .slice(rootIndex + 1)
    .filter((p) => tryParseBdfParts(p) !== undefined)
    .map((p) => p.toLowerCase());
  if (chain.length === 0) return undefined;
  const root = parts[rootIndex]!.toLowerCase();
  // sysfs names the root bus `pciDDDD:BB`; keep our canonical 4-digit-minimum form.
  const match = /^pci([0-9a-f]+):([0-9a-f]{2})$/.exec(root)!;
  return {
    host: hostBridgeId(Number.parseInt(match[1]!, 16), Number.parseInt(match[2]!, 16)),
    ancestors: chain.slice(0, -1),
  };
}

const LIKE_SYS =
  'a directory laid out like /sys (holding bus/pci/devices) or a capture holding sys/ and proc/';

/** BDF-named entries: the directory given is `bus/pci/devices` itself. */
function holdsFunctions(dir: string): boolean {
  const stats = statOrUndefined(dir);
  if (stats?.isDirectory() !== true) return false;
  try {
    return readdirSync(dir).some((name) => tryParseBdfParts(name) !== undefined);
  } catch {
    return false;
  }
}

/**
 * Finds `sys/` and `proc/` for a capture directory or a /sys-like directory. A directory at the wrong
 * level (`sys/bus/pci/devices`, `sys/bus/pci`, `sys/bus`) is an error naming the one to give.
 */
function locateRoots(dir: string): { sysRoot: string; procRoot: string } {
  const stats = statOrUndefined(dir);
  if (stats === undefined) fail('ENOENT', `${dir}: no such directory`, { file: dir });
  if (!stats.isDirectory()) fail('ENOTDIR', `${dir} is not a directory; expected ${LIKE_SYS}`, { file: dir });
  const wrongLevel = (looksLike: string, up: string): never =>
    fail('EINVAL', `this looks like ${looksLike}; give the sysfs root ${resolve(dir, up)} instead`, {
      file: dir,
    });
  if (holdsFunctions(dir)) wrongLevel('sys/bus/pci/devices (or a root bus directory)', '../../..');
  if (!existsSync(join(dir, 'bus')) && holdsFunctions(join(dir, 'devices')))
    wrongLevel('sys/bus/pci', '../..');
  if (existsSync(join(dir, 'pci', 'devices'))) wrongLevel('sys/bus', '..');
  if (existsSync(join(dir, 'sys', 'bus')) || existsSync(join(dir, 'sys', 'devices'))) {
    return { sysRoot: join(dir, 'sys'), procRoot: join(dir, 'proc') };
  }
  if (existsSync(join(dir, 'bus')) || existsSync(join(dir, 'devices')))
    return { sysRoot: dir, procRoot: join(resolve(dir), '..', 'proc') };
  fail('EINVAL', `expected ${LIKE_SYS}`, { file: dir });
}

/** IOMMU register ranges as /proc/iomem names them (VT-d "dmar0", AMD-Vi "amd_iommu", SMMU "arm-smmu-v3"). */
const IOMMU_IOMEM = /:\s*(dmar\d*|amd_iommu|arm-smmu\S*|smmu\S*)\s*$/im;

/**
 * Whether the machine ran with an IOMMU. Groups in the capture say yes. The iommu core creates
 * kernel/iommu_groups at boot whatever the hardware (drivers/iommu/iommu.c iommu_init), so on the
 * live /sys, or in a capture that holds that directory, no groups means no IOMMU. A capture without
 * the directory may simply not have copied it: then /proc/iomem's IOMMU register ranges decide.
 */
function iommuPresence(
  sysRoot: string,
  procRoot: string,
  grouped: boolean,
  live: boolean,
  notes: ImportNote[],
): 'present' | 'absent' | 'unknown' {
  if (grouped) return 'present';
  if (live || existsSync(join(sysRoot, 'kernel', 'iommu_groups'))) return 'absent';
  const iomemPath = join(procRoot, 'iomem');
  if (statOrUndefined(iomemPath)?.isFile() !== true) {
    notes.push({
      bdf: undefined,
      what: 'iommu',
      why: 'the capture holds neither kernel/iommu_groups nor proc/iomem: IOMMU unknown',
    });
    return 'unknown';
  }
  const iomem = readInputText(iomemPath, 'iomem capture');
  if (IOMMU_IOMEM.test(iomem)) {
    notes.push({
      bdf: undefined,
      what: 'iommu',
      why: 'proc/iomem shows IOMMU registers but the capture holds no IOMMU groups',
    });
    return 'present';
  }
  return 'absent';
}

/** Imports the PCI topology of a sysfs tree. */
export function importSysfs(dir: string, options: SysfsImportOptions = {}): TopologyImport {
  const { sysRoot, procRoot } = locateRoots(dir);
  const notes: ImportNote[] = [];
  const devicesDir = join(sysRoot, 'bus', 'pci', 'devices');
  const hasDevices = existsSync(devicesDir);
  if (!hasDevices && options.live !== true) {
    fail(
      'ENOENT',
      `the capture has no ${join('sys', 'bus', 'pci', 'devices')} (hwloc-gather-topology captures PCI only with --io); give a capture that holds it`,
      { file: dir },
    );
  }
  const names = hasDevices
    ? listDirectory(devicesDir, 'PCI devices', `; give ${LIKE_SYS}`)
        .filter((n) => !n.startsWith('.'))
        .sort()
    : [];
  if (!hasDevices) {
    notes.push({ bdf: undefined, what: 'pci', why: `${devicesDir} does not exist: no PCI bus exposed` });
  }
  const groups = readIommuGroups(sysRoot);
  const facts: FunctionFacts[] = [];
  const placements = new Map<Bdf, PathPlacement | undefined>();
  const configs = new Map<Bdf, DecodedConfig>();
  const resourceBars = new Map<Bdf, PciBar[]>();
  for (const name of names) {
    const bdf = name.toLowerCase();
    parseBdfParts(bdf, { file: join(devicesDir, name), field: 'name' });
    const { dir: entry, target } = resolveDeviceEntry(join(devicesDir, name));
    placements.set(bdf, placementFromPath(target));
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
    parents = new Map();
    const listed = new Set(placements.keys());
    for (const [bdf, p] of placements) {
      // The nearest bridge above that the capture lists: a snapshot may omit a bridge (some hwloc
      // captures do); the function still sits where its sysfs path puts it, never under an invented host.
      const ancestors = p!.ancestors;
      let parent: Bdf | undefined;
      for (let i = ancestors.length - 1; i >= 0; i--) {
        if (listed.has(ancestors[i]!)) {
          parent = ancestors[i];
          break;
        }
      }
      const missing = ancestors.filter((a) => !listed.has(a));
      if (missing.length > 0) {
        notes.push({
          bdf,
          what: 'hierarchy',
          why: `bridge ${missing.join(', ')} above it is missing from the capture's device list; placed by its sysfs path under ${parent ?? p!.host}`,
        });
      }
      parents.set(bdf, parent);
      if (parent === undefined) rootHost.set(bdf, p!.host);
    }
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
  const grouped = groups.size > 0 || facts.some((f) => f.reportedIommuGroup !== undefined);
  const iommu = iommuPresence(sysRoot, procRoot, grouped, options.live === true, notes);
  return { topology, source: dir, notes, iommu };
}

/**
 * What the sysfs and lspci importers share: the result of an import (a topology plus
 * notes on what the capture did not tell), rebuilding the bridge hierarchy from bus numbers, host
 * bridges from root buses, and /proc/cpuinfo.
 */
import { compareBdf, formatBdf, parseBdfParts } from './pci-bdf.ts';
import type { Bdf, CpuInfo, HostBridge, PciFunction, PciTopology } from './pci-types.ts';

/** Something a capture did not tell (or told inconsistently), kept so the CLI can say it. */
export interface ImportNote {
  readonly bdf: Bdf | undefined;
  /** Short name of the unknown, e.g. `acs`, `bars`, `iommu-group`, `bus-offset`. */
  readonly what: string;
  readonly why: string;
}

export interface TopologyImport {
  readonly topology: PciTopology;
  /** Where it came from, e.g. `/sys` or `lspci text (tree.txt, verbose.txt)`. */
  readonly source: string;
  readonly notes: readonly ImportNote[];
  /**
   * Whether the machine ran with an IOMMU: `present` when the capture shows IOMMU groups, `absent`
   * when it shows a sysfs tree without them, `unknown` when the source cannot tell.
   */
  readonly iommu?: 'present' | 'absent' | 'unknown';
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

/** `pciDDDD:BB`, the name sysfs gives a host bridge's root bus directory. */
export function hostBridgeId(domain: number, bus: number): string {
  return `pci${hex(domain, 4)}:${hex(bus, 2)}`;
}

/** A function before its place in the tree is settled. */
export type FunctionFacts = Omit<PciFunction, 'parent' | 'hostBridge'>;

/**
 * The upstream bridge of each function from bus numbers alone, as hwloc does when sysfs paths are
 * flat: the bridge of the same domain whose [secondary, subordinate] range holds the function's bus
 * most tightly. Functions no bridge claims sit on a root bus.
 */
export function parentsFromBusNumbers(functions: readonly FunctionFacts[]): Map<Bdf, Bdf | undefined> {
  const bridges = functions.filter((f) => f.secondaryBus !== undefined && f.subordinateBus !== undefined);
  const parents = new Map<Bdf, Bdf | undefined>();
  for (const f of functions) {
    const me = parseBdfParts(f.bdf);
    let best: FunctionFacts | undefined;
    for (const bridge of bridges) {
      if (bridge.bdf === f.bdf) continue;
      const b = parseBdfParts(bridge.bdf);
      const secondary = bridge.secondaryBus!;
      const subordinate = bridge.subordinateBus!;
      // A bridge whose secondary bus is not below it is unconfigured; it forwards nothing.
      if (b.segment !== me.segment || secondary <= b.bus || secondary > me.bus || me.bus > subordinate)
        continue;
      if (
        best === undefined ||
        subordinate - secondary < best.subordinateBus! - best.secondaryBus! ||
        (subordinate - secondary === best.subordinateBus! - best.secondaryBus! &&
          secondary > best.secondaryBus!)
      ) {
        best = bridge;
      }
    }
    parents.set(f.bdf, best?.bdf);
  }
  return parents;
}

export interface HostBridgeFacts {
  /** Host bridge id per root-bus function (`pciDDDD:BB`); others inherit from their parent. */
  readonly rootOf: (bdf: Bdf) => string;
  /** CPU minus bus address per host bridge, when a BAR showed both. */
  readonly busOffsets: ReadonlyMap<string, bigint>;
}

/**
 * Places functions in the tree: parent links, the host bridge of each, and the host bridges (bus
 * range from the root bus to the highest subordinate bus seen below it: the firmware window may be
 * larger, a capture does not show it).
 */
export function assembleTopology(
  facts: readonly FunctionFacts[],
  parents: ReadonlyMap<Bdf, Bdf | undefined>,
  rootHostBridge: ReadonlyMap<Bdf, string>,
  cpu: CpuInfo,
  busOffsets: ReadonlyMap<string, bigint>,
  notes: ImportNote[],
): PciTopology {
  const byBdf = new Map(facts.map((f) => [f.bdf, f]));
  const hostOf = new Map<Bdf, string>();
  const resolveHost = (bdf: Bdf, depth: number): string => {
    const known = hostOf.get(bdf);
    if (known !== undefined) return known;
    const parent = parents.get(bdf);
    let host: string;
    if (parent === undefined || depth > 256 || !byBdf.has(parent)) {
      const root = rootHostBridge.get(bdf);
      const p = parseBdfParts(bdf);
      host = root ?? hostBridgeId(p.segment, p.bus);
    } else {
      host = resolveHost(parent, depth + 1);
    }
    hostOf.set(bdf, host);
    return host;
  };
  const functions = new Map<Bdf, PciFunction>();
  for (const f of [...facts].sort((a, b) => compareBdf(a.bdf, b.bdf))) {
    const parent = parents.get(f.bdf);
    functions.set(f.bdf, {
      ...f,
      parent: parent !== undefined && byBdf.has(parent) ? parent : undefined,
      hostBridge: resolveHost(f.bdf, 0),
    });
  }
  const hostIds = [...new Set([...functions.values()].map((f) => f.hostBridge))];
  const hostBridges: HostBridge[] = hostIds.map((id) => {
    const match = /^pci([0-9a-f]+):([0-9a-f]{2})$/i.exec(id);
    const segment = match ? Number.parseInt(match[1]!, 16) : 0;
    const busStart = match ? Number.parseInt(match[2]!, 16) : 0;
    const members = [...functions.values()].filter((f) => f.hostBridge === id);
    let busEnd = busStart;
    for (const m of members) {
      busEnd = Math.max(busEnd, parseBdfParts(m.bdf).bus, m.subordinateBus ?? 0);
    }
    const self = functions.get(formatBdf({ segment, bus: busStart, device: 0, function: 0 }));
    const numaNode = members.find((m) => m.numaNode !== undefined)?.numaNode;
    const offset = busOffsets.get(id);
    if (offset === undefined) {
      notes.push({
        bdf: undefined,
        what: 'bus-offset',
        why: `${id}: CPU-to-bus offset not shown by the capture; taken as 0`,
      });
    }
    return {
      id,
      segment,
      busStart,
      busEnd,
      vendorId: self?.vendorId,
      deviceId: self?.deviceId,
      busOffset: offset ?? 0n,
      numaNode,
    };
  });
  hostBridges.sort((a, b) => a.segment - b.segment || a.busStart - b.busStart);
  return { hostBridges, functions, cpu };
}

/** CPU vendor and family from /proc/cpuinfo text (first processor block). */
export function parseCpuInfo(text: string): CpuInfo {
  let vendor: CpuInfo['vendor'] = 'unknown';
  let family: number | undefined;
  for (const line of text.split('\n')) {
    const [rawKey, ...rest] = line.split(':');
    const key = rawKey?.trim().toLowerCase();
    const value = rest.join(':').trim();
    if (key === 'vendor_id' && vendor === 'unknown') {
      if (value === 'GenuineIntel') vendor = 'intel';
      else if (value === 'AuthenticAMD') vendor = 'amd';
    } else if (key === 'cpu family' && family === undefined && /^\d+$/.test(value)) {
      family = Number.parseInt(value, 10);
    } else if (key === 'cpu implementer' && vendor === 'unknown') {
      vendor = 'arm';
    }
    if (line.trim() === '' && (vendor !== 'unknown' || family !== undefined)) break;
  }
  return { vendor, family: vendor === 'intel' || vendor === 'amd' ? family : undefined };
}

export const UNKNOWN_CPU: CpuInfo = { vendor: 'unknown', family: undefined };

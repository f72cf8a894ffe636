/**
 * Questions asked of a PciTopology: which function is this, what is above it, which BAR holds an
 * address, which host bridge is it under. Indexes are built once per topology object and cached.
 */
import { fail } from '../core/index.ts';
import { parseBdfParts } from './pci-bdf.ts';
import type { Bdf, HostBridge, PciBar, PciFunction, PciTopology } from './pci-types.ts';

export function findFunction(topology: PciTopology, bdf: Bdf): PciFunction | undefined {
  return topology.functions.get(bdf);
}

/** Like findFunction, but a missing function is ENODEV. */
export function requireFunction(topology: PciTopology, bdf: Bdf): PciFunction {
  const fn = topology.functions.get(bdf);
  if (fn === undefined) fail('ENODEV', `no PCI function ${bdf} in this topology`);
  return fn;
}

/**
 * The function followed by its successive upstream bridges (pci_upstream_bridge, include/linux/pci.h):
 * the walk ends at a function on a root bus, so a root port or an RC-integrated endpoint is always last.
 */
export function upstreamChain(topology: PciTopology, bdf: Bdf): PciFunction[] {
  const chain: PciFunction[] = [];
  let fn: PciFunction | undefined = requireFunction(topology, bdf);
  while (fn !== undefined) {
    if (chain.length > 256) fail('EINVAL', `${bdf}: parent links form a loop`);
    chain.push(fn);
    fn = fn.parent === undefined ? undefined : requireFunction(topology, fn.parent);
  }
  return chain;
}

/** The host bridge a function is under (pci_find_host_bridge). */
export function hostBridgeOf(topology: PciTopology, bdf: Bdf): HostBridge {
  const fn = requireFunction(topology, bdf);
  const hb = topology.hostBridges.find((h) => h.id === fn.hostBridge);
  if (hb === undefined) fail('ENODEV', `${bdf} names host bridge ${fn.hostBridge}, which the topology lacks`);
  return hb;
}

/** Functions directly below a bridge (or on a host bridge's root bus when `parent` is undefined). */
export function childrenOf(
  topology: PciTopology,
  parent: Bdf | undefined,
  hostBridge?: string,
): PciFunction[] {
  const out: PciFunction[] = [];
  for (const fn of topology.functions.values()) {
    if (fn.parent !== parent) continue;
    if (parent === undefined && hostBridge !== undefined && fn.hostBridge !== hostBridge) continue;
    out.push(fn);
  }
  return out;
}

/**
 * The function a host bridge is identified by (pci_host_bridge_dev in drivers/pci/p2pdma.c): the first
 * function of its root bus, taken only when it sits at devfn 00.0 or is a root port. When the topology
 * holds no function on that root bus (a thin capture), the bridge's own recorded IDs stand in.
 */
export function hostBridgeRepresentative(topology: PciTopology, hb: HostBridge): HostBridgeRepresentative {
  let cache = representatives.get(topology);
  if (cache === undefined) {
    cache = new Map();
    representatives.set(topology, cache);
  }
  if (cache.has(hb.id)) return cache.get(hb.id);
  const rep = findRepresentative(topology, hb);
  cache.set(hb.id, rep);
  return rep;
}

type HostBridgeRepresentative =
  | { bdf: Bdf | undefined; vendorId: number | undefined; deviceId: number | undefined }
  | undefined;

// Topologies are immutable values, so a host bridge's identifying function is found once.
const representatives = new WeakMap<PciTopology, Map<string, HostBridgeRepresentative>>();

function findRepresentative(topology: PciTopology, hb: HostBridge): HostBridgeRepresentative {
  let first: { fn: PciFunction; devfn: number } | undefined;
  for (const fn of topology.functions.values()) {
    if (fn.hostBridge !== hb.id || fn.parent !== undefined) continue;
    const p = parseBdfParts(fn.bdf);
    if (p.bus !== hb.busStart) continue;
    const devfn = (p.device << 3) | p.function;
    if (first === undefined || devfn < first.devfn) first = { fn, devfn };
  }
  if (first === undefined) {
    if (hb.vendorId === undefined) return undefined;
    return { bdf: undefined, vendorId: hb.vendorId, deviceId: hb.deviceId };
  }
  if (first.devfn !== 0 && first.fn.kind !== 'root-port') return undefined;
  return { bdf: first.fn.bdf, vendorId: first.fn.vendorId, deviceId: first.fn.deviceId };
}

export interface BarHit {
  readonly function: PciFunction;
  readonly bar: PciBar;
  /** Offset of the address inside the BAR. */
  readonly offset: bigint;
}

interface BarIndex {
  readonly starts: bigint[];
  readonly entries: { fn: PciFunction; bar: PciBar }[];
}

const barIndexes = new WeakMap<PciTopology, BarIndex>();

function barIndexOf(topology: PciTopology): BarIndex {
  let index = barIndexes.get(topology);
  if (index === undefined) {
    const entries: { fn: PciFunction; bar: PciBar }[] = [];
    for (const fn of topology.functions.values())
      for (const bar of fn.bars) if (!bar.io && bar.size > 0n) entries.push({ fn, bar });
    entries.sort((a, b) =>
      a.bar.cpuAddress < b.bar.cpuAddress ? -1 : a.bar.cpuAddress > b.bar.cpuAddress ? 1 : 0,
    );
    index = { starts: entries.map((e) => e.bar.cpuAddress), entries };
    barIndexes.set(topology, index);
  }
  return index;
}

/** The memory BAR holding a CPU physical address, by binary search (I/O BARs are not memory). */
export function barContaining(topology: PciTopology, address: bigint): BarHit | undefined {
  const { starts, entries } = barIndexOf(topology);
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]! <= address) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) return undefined;
  const { fn, bar } = entries[found]!;
  const offset = address - bar.cpuAddress;
  return offset < bar.size ? { function: fn, bar, offset } : undefined;
}

/**
 * Short names for a topology's endpoints (gpu0, nic0, nic1, nvme0…), numbered per kind in BDF order,
 * and one way to resolve what a user typed — a BDF, such a label, or a function's own name — to a
 * BDF. Scenarios and the `physr p2p` command both use it, so a label means the same device everywhere.
 */
import { fail, isPhysrError } from '../core/index.ts';
import { compareBdf, parseBdf } from './pci-bdf.ts';
import type { Bdf, PciTopology } from './pci-types.ts';

/** The label prefix of an endpoint, from its PCI class (include/linux/pci_ids.h class codes). */
function labelPrefix(classCode: number | undefined): string {
  if (classCode === undefined) return 'dev';
  const base = classCode >> 16;
  const sub = (classCode >> 8) & 0xff;
  if (base === 0x01 && sub === 0x08) return 'nvme';
  if (base === 0x01) return 'storage';
  if (base === 0x03) return 'gpu';
  if (base === 0x02 && sub === 0x80) return 'wifi';
  if (base === 0x02) return 'nic';
  return 'dev';
}

const labelCache = new WeakMap<PciTopology, ReadonlyMap<string, Bdf>>();

/** gpu0, nic0, nic1, nvme0…: endpoints numbered per kind in BDF order. */
export function deviceLabels(topology: PciTopology): ReadonlyMap<string, Bdf> {
  const cached = labelCache.get(topology);
  if (cached !== undefined) return cached;
  const labels = new Map<string, Bdf>();
  const counts = new Map<string, number>();
  const endpoints = [...topology.functions.values()]
    .filter((f) => f.kind === 'endpoint' || f.kind === 'rc-integrated-endpoint')
    .sort((a, b) => compareBdf(a.bdf, b.bdf));
  for (const fn of endpoints) {
    const prefix = labelPrefix(fn.classCode);
    const n = counts.get(prefix) ?? 0;
    counts.set(prefix, n + 1);
    labels.set(`${prefix}${n}`, fn.bdf);
  }
  labelCache.set(topology, labels);
  return labels;
}

/** `gpu0=03:00.0 nic0=04:00.0 …` (segment 0 left out), for listings and error messages. */
export function formatDeviceLabels(topology: PciTopology): string {
  return [...deviceLabels(topology)].map(([l, b]) => `${l}=${b.replace(/^0000:/, '')}`).join(' ');
}

/**
 * A device named by BDF (`0000:03:00.0` or `03:00.0`), label (`gpu0`) or function name (`GPU`,
 * case-insensitive). ENODEV lists the labels; a name shared by several functions is EINVAL.
 */
export function resolveDevice(topology: PciTopology, name: string): Bdf {
  const labelled = deviceLabels(topology).get(name.toLowerCase());
  if (labelled !== undefined) return labelled;
  let bdf: Bdf | undefined;
  try {
    bdf = parseBdf(name);
  } catch (error) {
    if (!isPhysrError(error)) throw error;
  }
  if (bdf !== undefined) {
    if (!topology.functions.has(bdf)) fail('ENODEV', `no PCI function ${bdf} in this topology`);
    return bdf;
  }
  const lower = name.toLowerCase();
  const named = [...topology.functions.values()].filter((f) => f.name?.toLowerCase() === lower);
  if (named.length === 1) return named[0]!.bdf;
  if (named.length > 1) fail('EINVAL', `"${name}" names ${named.length} functions; use a BDF or a label`);
  const labels = formatDeviceLabels(topology);
  fail(
    'ENODEV',
    `"${name}" is neither a PCI address (DDDD:BB:DD.F) nor a device label${labels ? ` (labels: ${labels})` : ''}`,
  );
}

/**
 * IOMMU groups derived from the PCI topology the way pci_device_group (drivers/iommu/iommu.c) does:
 * 1. a function behind a PCIe-to-PCI bridge is indistinguishable from it (pci_for_each_dma_alias), so
 *    the walk starts at the topmost such bridge;
 * 2. walk up the buses while the bridge above is not isolated by ACS all the way to the root
 *    (pci_acs_path_enabled with REQ_ACS_FLAGS = SV|RR|CR|UF, drivers/pci/pci.c); every non-isolating
 *    bridge passed pulls the function into that bridge's group;
 * 3. where the walk stops, a multi-function device without ACS shares its group with each sibling
 *    function that also lacks ACS (get_pci_function_alias_group).
 * Device-specific ACS quirks (pci_dev_specific_acs_enabled) and DMA-alias quirks are not modelled.
 * ACS `unknown` is taken as "not enabled" (what the kernel sees when it cannot find the capability):
 * groups can only come out larger than the truth, and each such group says so.
 */
import { acsEnabled, REQ_ACS_FLAGS } from './pci-acs.ts';
import { slotOf } from './pci-bdf.ts';
import { requireFunction, upstreamChain } from './pci-query.ts';
import type { Bdf, PciFunction, PciTopology } from './pci-types.ts';

export interface IommuGroup {
  readonly id: number;
  readonly members: readonly Bdf[];
  /** `derived-conservatively` when an unknown ACS state merged members that might really be apart. */
  readonly certainty: 'derived' | 'derived-conservatively';
  /** Why the members are together (or, for a single member, why it stands alone). */
  readonly reasons: readonly string[];
}

export interface IommuGroups {
  readonly groupOf: ReadonlyMap<Bdf, number>;
  readonly groups: readonly IommuGroup[];
}

/** The multifunction bit when known, else whether other functions share the slot. */
export function effectiveMultifunction(topology: PciTopology, fn: PciFunction): boolean {
  if (fn.multifunction !== undefined) return fn.multifunction;
  const slot = slotOf(fn.bdf);
  for (const other of topology.functions.values())
    if (other !== fn && slotOf(other.bdf) === slot) return true;
  return false;
}

interface Isolation {
  readonly enabled: boolean;
  /** The first function on the path that lacks the flags. */
  readonly blocker: PciFunction | undefined;
  readonly unknown: boolean;
}

function acsAt(topology: PciTopology, fn: PciFunction): boolean | 'unknown' {
  return acsEnabled(fn, effectiveMultifunction(topology, fn), REQ_ACS_FLAGS);
}

/** pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS): every function from start up to the root bus. */
export function acsPathEnabled(topology: PciTopology, start: Bdf): Isolation {
  for (const fn of upstreamChain(topology, start)) {
    const answer = acsAt(topology, fn);
    if (answer !== true) return { enabled: false, blocker: fn, unknown: answer === 'unknown' };
  }
  return { enabled: true, blocker: undefined, unknown: false };
}

function describeBlocker(iso: Isolation): string {
  const b = iso.blocker!;
  if (iso.unknown)
    return `ACS of ${b.bdf} is unknown (${b.acs.kind === 'unknown' ? b.acs.why : ''}), taken as not isolating`;
  if (b.kind === 'pci-bridge') return `${b.bdf} is a PCIe-to-PCI bridge, which never isolates`;
  if (b.acs.kind === 'absent') return `${b.bdf} has no ACS capability`;
  return `${b.bdf} does not enable ACS SV/RR/CR/UF`;
}

class UnionFind {
  private readonly parent = new Map<Bdf, Bdf>();
  find(x: Bdf): Bdf {
    let root = x;
    while (this.parent.has(root) && this.parent.get(root) !== root) root = this.parent.get(root)!;
    let cur = x;
    while (cur !== root) {
      const next = this.parent.get(cur)!;
      this.parent.set(cur, root);
      cur = next;
    }
    return root;
  }
  union(a: Bdf, b: Bdf): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (ra < rb) this.parent.set(rb, ra);
    else this.parent.set(ra, rb);
  }
}

function aloneReason(topology: PciTopology, bdf: Bdf): string {
  const parent = requireFunction(topology, bdf).parent;
  return parent === undefined
    ? `${bdf} sits on a root bus with no non-isolated sibling function`
    : `${bdf} is isolated: ACS SV/RR/CR/UF is in force from ${parent} up to the root`;
}

/** Groups every function of the topology; group ids count up in BDF order of each group's first member. */
export function deriveIommuGroups(topology: PciTopology): IommuGroups {
  const uf = new UnionFind();
  const reasons: { a: Bdf; b: Bdf; why: string; unknown: boolean }[] = [];
  const join = (a: Bdf, b: Bdf, why: string, unknown: boolean): void => {
    if (a === b) return;
    uf.union(a, b);
    reasons.push({ a, b, why, unknown });
  };

  for (const fn of topology.functions.values()) {
    // 1. DMA alias through conventional PCI: the topmost PCIe-to-PCI bridge speaks for everything below it.
    let pdev = fn;
    for (const up of upstreamChain(topology, fn.bdf).slice(1)) if (up.kind === 'pci-bridge') pdev = up;
    if (pdev !== fn)
      join(
        fn.bdf,
        pdev.bdf,
        `${fn.bdf} is behind PCIe-to-PCI bridge ${pdev.bdf} and carries its requester ID`,
        false,
      );

    // 2. Climb while the bridge above does not isolate its path to the root.
    let bridgeBdf = pdev.parent;
    while (bridgeBdf !== undefined) {
      const iso = acsPathEnabled(topology, bridgeBdf);
      if (iso.enabled) break;
      join(
        pdev.bdf,
        bridgeBdf,
        `${pdev.bdf} shares ${bridgeBdf}'s group: ${describeBlocker(iso)}`,
        iso.unknown,
      );
      pdev = requireFunction(topology, bridgeBdf);
      bridgeBdf = pdev.parent;
    }

    // 3. Functions of one device without ACS can reach each other.
    if (effectiveMultifunction(topology, pdev)) {
      const own = acsAt(topology, pdev);
      if (own !== true) {
        const slot = slotOf(pdev.bdf);
        for (const sib of topology.functions.values()) {
          if (sib === pdev || slotOf(sib.bdf) !== slot) continue;
          const theirs = acsAt(topology, sib);
          if (theirs === true) continue;
          const unknown = own === 'unknown' || theirs === 'unknown';
          join(
            pdev.bdf,
            sib.bdf,
            `${pdev.bdf} and ${sib.bdf} are functions of one multi-function device without ACS isolation${unknown ? ' (ACS unknown, taken as absent)' : ''}`,
            unknown,
          );
        }
      }
    }
  }

  const byRoot = new Map<Bdf, Bdf[]>();
  for (const bdf of [...topology.functions.keys()].sort()) {
    const root = uf.find(bdf);
    const list = byRoot.get(root);
    if (list === undefined) byRoot.set(root, [bdf]);
    else list.push(bdf);
  }
  const groupOf = new Map<Bdf, number>();
  const groups: IommuGroup[] = [];
  for (const members of byRoot.values()) {
    const id = groups.length;
    for (const m of members) groupOf.set(m, id);
    const root = uf.find(members[0]!);
    const mine = reasons.filter((r) => uf.find(r.a) === root);
    const why = [...new Set(mine.map((r) => r.why))];
    groups.push({
      id,
      members,
      certainty: mine.some((r) => r.unknown) ? 'derived-conservatively' : 'derived',
      reasons: why.length > 0 ? why : [aloneReason(topology, members[0]!)],
    });
  }
  return { groupOf, groups };
}

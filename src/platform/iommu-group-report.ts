/**
 * `physr groups`: IOMMU groups as the kernel derives them (iommu-groups.ts), beside the groups the
 * capture reports (sysfs `iommu_group` links, lspci's "IOMMU group:"), every difference flagged, and
 * whether a device can be given to VFIO alone.
 *
 * VFIO takes a whole group: vfio-pci can use a device only when every other member with a driver
 * lets go of DMA ownership (iommu_device_claim_dma_owner, drivers/iommu/iommu.c). PCIe ports are
 * driven by pcieport, which declares driver_managed_dma (drivers/pci/pcie/portdrv.c), and bridges
 * without a driver do no DMA, so only the other endpoints stand in the way: they must be bound to
 * vfio-pci too (or left without a driver).
 */
import { deriveIommuGroups, type IommuGroup } from './iommu-groups.ts';
import type { Bdf, PciFunction, PciTopology } from './pci-types.ts';

export type IommuPresence = 'present' | 'absent' | 'unknown';

export interface GroupVfio {
  /** Members that do DMA of their own (endpoints). */
  readonly endpoints: readonly Bdf[];
  /** True when at most one endpoint is in the group: it can be given to VFIO alone. */
  readonly alone: boolean;
}

export interface GroupReportEntry {
  readonly derived: IommuGroup;
  /** The reported group number of each member (undefined where the capture has none). */
  readonly reported: readonly (number | undefined)[];
  readonly vfio: GroupVfio;
  /** What differs from the capture's groups, in words (empty when they agree). */
  readonly differences: readonly string[];
}

export interface GroupReport {
  readonly iommu: IommuPresence;
  /** Empty without an IOMMU: the kernel makes no groups, and none are invented. */
  readonly groups: readonly GroupReportEntry[];
  /** Reported groups, for the comparison: number → members. */
  readonly reportedGroups: ReadonlyMap<number, readonly Bdf[]>;
  readonly differences: number;
}

function isDmaEndpoint(fn: PciFunction): boolean {
  return fn.kind === 'endpoint' || fn.kind === 'rc-integrated-endpoint';
}

const NOT_MODELLED =
  'a device-specific ACS or DMA-alias quirk (pci_dev_specific_acs_enabled, pci_add_dma_alias) or a kernel option the model does not know (e.g. an out-of-tree pcie_acs_override)';

/** Derives the groups and compares them with what the capture reports. */
export function iommuGroupReport(topology: PciTopology, iommu: IommuPresence): GroupReport {
  const reportedGroups = new Map<number, Bdf[]>();
  for (const fn of topology.functions.values()) {
    if (fn.reportedIommuGroup === undefined) continue;
    const list = reportedGroups.get(fn.reportedIommuGroup) ?? [];
    list.push(fn.bdf);
    reportedGroups.set(fn.reportedIommuGroup, list);
  }
  if (iommu === 'absent') return { iommu, groups: [], reportedGroups, differences: 0 };
  const derived = deriveIommuGroups(topology);
  let differences = 0;
  const groups = derived.groups.map((g): GroupReportEntry => {
    const fns = g.members.map((m) => topology.functions.get(m)!);
    const reported = fns.map((f) => f.reportedIommuGroup);
    const diffs: string[] = [];
    if (reportedGroups.size > 0) {
      const missing = fns.filter((f) => f.reportedIommuGroup === undefined).map((f) => f.bdf);
      if (missing.length > 0) diffs.push(`${missing.join(', ')}: no IOMMU group in the capture`);
      const distinct = [...new Set(reported.filter((r) => r !== undefined))];
      if (distinct.length > 1)
        diffs.push(
          `the kernel split these into groups ${distinct.join(', ')}; the model, from ACS and multifunction alone, keeps them together: ${NOT_MODELLED}, or ACS the capture did not show`,
        );
      for (const r of distinct) {
        const others = (reportedGroups.get(r) ?? []).filter((b) => !g.members.includes(b));
        if (others.length > 0)
          diffs.push(
            `reported group ${r} also holds ${others.join(', ')}, which the model puts in other groups: ${NOT_MODELLED}`,
          );
      }
    }
    differences += diffs.length;
    const endpoints = fns.filter(isDmaEndpoint).map((f) => f.bdf);
    return { derived: g, reported, vfio: { endpoints, alone: endpoints.length <= 1 }, differences: diffs };
  });
  return { iommu, groups, reportedGroups, differences };
}

/** The VFIO line of a group. */
export function describeVfio(entry: GroupReportEntry): string {
  const { endpoints, alone } = entry.vfio;
  const bridges = entry.derived.members.length - endpoints.length;
  if (endpoints.length === 0) return 'no endpoint: nothing to give to VFIO';
  if (alone)
    return `${endpoints[0]} can be given to VFIO alone${bridges > 0 ? ` (the other member${bridges === 1 ? ' is a bridge' : 's are bridges'}: pcieport manages DMA safely, iommu_device_claim_dma_owner accepts it)` : ''}`;
  return `not alone: giving any of ${endpoints.join(', ')} to vfio-pci needs every other one bound to vfio-pci too (or to no driver); they stand in the way`;
}

/** Text for `physr groups`. */
export function formatGroupReport(report: GroupReport, source: string): string {
  const out = [`topology: ${source}`];
  if (report.iommu === 'absent') {
    out.push(
      'IOMMU: none. The capture has no IOMMU groups (kernel/iommu_groups is empty or missing), so the kernel',
      'made none; no groups are shown. VFIO needs an IOMMU group per device (or the unsafe no-IOMMU mode).',
    );
    return `${out.join('\n')}\n`;
  }
  out.push(
    report.iommu === 'present'
      ? `IOMMU: present; the capture reports ${report.reportedGroups.size} group${report.reportedGroups.size === 1 ? '' : 's'}${report.reportedGroups.size === 0 ? ' (a built-in platform: derived groups only)' : ''}`
      : 'IOMMU: unknown (the input does not say); the groups below are what the kernel forms with one',
  );
  out.push(
    `${report.groups.length} derived group${report.groups.length === 1 ? '' : 's'}; ${report.differences === 0 ? 'no differences from the capture' : `${report.differences} difference${report.differences === 1 ? '' : 's'} from the capture (marked !)`}`,
    '',
  );
  for (const entry of report.groups) {
    const g = entry.derived;
    const reported = [...new Set(entry.reported.filter((r) => r !== undefined))];
    const rep = reported.length === 0 ? '' : `, reported ${reported.join('+')}`;
    const certainty = g.certainty === 'derived' ? '' : ', conservatively (ACS unknown)';
    out.push(`group ${g.id}${rep}${certainty}: ${g.members.join(' ')}`);
    for (const why of g.reasons) out.push(`  why: ${why}`);
    out.push(`  VFIO: ${describeVfio(entry)}`);
    for (const d of entry.differences) out.push(`  ! ${d}`);
  }
  return `${out.join('\n')}\n`;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export function groupReportToJson(report: GroupReport, source: string): Json {
  return {
    source,
    iommu: report.iommu,
    differences: report.differences,
    groups: report.groups.map((e) => ({
      id: e.derived.id,
      members: [...e.derived.members],
      reported: e.reported.map((r) => r ?? null),
      certainty: e.derived.certainty,
      reasons: [...e.derived.reasons],
      vfio: { alone: e.vfio.alone, endpoints: [...e.vfio.endpoints], text: describeVfio(e) },
      differences: [...e.differences],
    })),
    reportedGroups: [...report.reportedGroups].map(([id, members]) => ({ id, members: [...members] })),
  };
}

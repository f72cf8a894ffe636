/**
 * `physr groups`: derived vs captured groups with every difference flagged, why members share a
 * group, VFIO viability and who stands in the way; no invented groups without an IOMMU.
 */
import { describe, expect, test } from 'vitest';
import {
  buildTopology,
  builtinTopology,
  endpoint,
  formatGroupReport,
  groupReportToJson,
  importSysfs,
  iommuGroupReport,
  type PciTopology,
  parseKernelCmdline,
  rootPort,
} from '../../src/platform/index.ts';

/** The topology with the capture's groups set per BDF (what sysfs iommu_group links give). */
function withReported(t: PciTopology, groups: Record<string, number>): PciTopology {
  const functions = new Map(
    [...t.functions].map(([bdf, fn]) => [bdf, { ...fn, reportedIommuGroup: groups[bdf] }] as const),
  );
  return { ...t, functions };
}

/** A root port without ACS holding a two-function NIC; a second root port (no ACS) with a GPU. */
function small(): PciTopology {
  return buildTopology({
    cpu: { vendor: 'intel', family: 6 },
    hostBridges: [
      {
        vendorId: 0x8086,
        deviceId: 0x09a2,
        children: [
          rootPort({ device: 1 }, [
            endpoint({ function: 0, classCode: 0x020000 }),
            endpoint({ function: 1, classCode: 0x020000 }),
          ]),
          rootPort({ device: 2 }, [endpoint({ classCode: 0x030000 })]),
        ],
      },
    ],
  });
}

describe('physr groups', () => {
  test('no IOMMU (gpu-vm-6.18): says so and shows no groups', () => {
    const { topology, iommu } = importSysfs('/work/shared/data/captures/gpu-vm-6.18/snap');
    expect(iommu).toBe('absent');
    const report = iommuGroupReport(topology, iommu!);
    expect(report.groups).toEqual([]);
    const text = formatGroupReport(report, 'gpu-vm');
    expect(text).toContain('IOMMU: none.');
    expect(text).not.toMatch(/^group /m);
  });

  test('why members share a group, and who stands in the way of VFIO', () => {
    const report = iommuGroupReport(small(), 'present');
    // Root ports without ACS on one root bus: pci_acs_path_enabled fails at each, so each endpoint
    // joins its port's group; the two NIC functions share the port's.
    const nics = report.groups.find((g) => g.derived.members.includes('0000:01:00.0'))!;
    expect(nics.derived.members).toEqual(['0000:00:01.0', '0000:01:00.0', '0000:01:00.1']);
    expect(nics.derived.reasons).toContain(
      "0000:01:00.0 shares 0000:00:01.0's group: 0000:00:01.0 has no ACS capability",
    );
    expect(nics.vfio).toEqual({ endpoints: ['0000:01:00.0', '0000:01:00.1'], alone: false });
    const gpu = report.groups.find((g) => g.derived.members.includes('0000:02:00.0'))!;
    expect(gpu.vfio).toEqual({ endpoints: ['0000:02:00.0'], alone: true });
    const text = formatGroupReport(report, 'small');
    expect(text).toContain(
      'VFIO: not alone: giving any of 0000:01:00.0, 0000:01:00.1 to vfio-pci needs every other one bound to vfio-pci too (or to no driver); they stand in the way',
    );
    expect(text).toContain('VFIO: 0000:02:00.0 can be given to VFIO alone (the other member is a bridge');
  });

  test('every difference from the captured groups is flagged, both ways', () => {
    // The kernel split the NIC functions (a quirk the model lacks) and merged the GPU into the NIC's group.
    const t = withReported(small(), {
      '0000:00:00.0': 0,
      '0000:00:01.0': 1,
      '0000:01:00.0': 1,
      '0000:01:00.1': 2,
      '0000:00:02.0': 3,
      '0000:02:00.0': 2,
    });
    const report = iommuGroupReport(t, 'present');
    const nics = report.groups.find((g) => g.derived.members.includes('0000:01:00.0'))!;
    expect(nics.reported).toEqual([1, 1, 2]);
    expect(nics.differences[0]).toMatch(/^the kernel split these into groups 1, 2; the model/);
    expect(nics.differences[1]).toMatch(
      /^reported group 2 also holds 0000:02:00.0, which the model puts in other groups/,
    );
    const gpu = report.groups.find((g) => g.derived.members.includes('0000:02:00.0'))!;
    expect(gpu.differences.length).toBe(2);
    const agreeing = report.groups.find((g) => g.derived.members.includes('0000:00:00.0'))!;
    expect(agreeing.differences).toEqual([]);
    expect(report.differences).toBe(4);
    expect(formatGroupReport(report, 't')).toContain('4 differences from the capture (marked !)');
  });

  test('built-in x86-2s boots isolated; with redirect off on the path GPU and NIC share a group', () => {
    const x86 = builtinTopology('x86-2s')!;
    const booted = iommuGroupReport(x86.build(), 'present');
    const gpu = booted.groups.find((g) => g.derived.members.includes('0000:03:00.0'))!;
    expect(gpu.derived.members).toEqual(['0000:03:00.0']);
    const off = iommuGroupReport(
      x86.build(parseKernelCmdline('pci=disable_acs_redir=0000:00:01.0;0000:02:00.0;0000:02:01.0')),
      'present',
    );
    const shared = off.groups.find((g) => g.derived.members.includes('0000:03:00.0'))!;
    expect(shared.vfio.endpoints).toEqual(['0000:03:00.0', '0000:04:00.0']);
    expect(shared.vfio.alone).toBe(false);
    const json = groupReportToJson(off, 'x') as { groups: { members: string[] }[] };
    expect(
      json.groups.some((g) => g.members.includes('0000:04:00.0') && g.members.includes('0000:03:00.0')),
    ).toBe(true);
  });
});

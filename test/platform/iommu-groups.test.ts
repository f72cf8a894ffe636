import { describe, expect, it } from 'vitest';
import {
  acsPort,
  acsUnknown,
  BUILTIN_TOPOLOGIES,
  buildTopology,
  deriveIommuGroups,
  endpoint,
  pciBridge,
  rootPort,
  twoSocketServer,
} from '../../src/platform/index.ts';
import { A, B, C, DSP0, DSP1, RP1, switchTopology, USP } from './pci-fixtures.ts';

function sameGroup(groups: ReturnType<typeof deriveIommuGroups>, ...bdfs: string[]): boolean {
  return new Set(bdfs.map((b) => groups.groupOf.get(b))).size === 1;
}

describe('deriveIommuGroups', () => {
  it('a switch below a root port without ACS: one group for the port, the switch and its children', () => {
    const g = deriveIommuGroups(switchTopology());
    expect(sameGroup(g, RP1, USP, DSP0, DSP1, A, B)).toBe(true);
    expect(sameGroup(g, A, C)).toBe(false);
    const group = g.groups[g.groupOf.get(A)!]!;
    expect(group.certainty).toBe('derived');
    expect(group.reasons.join('\n')).toContain(`${RP1} has no ACS capability`);
  });

  it('with ACS SV/RR/CR/UF on every port: each function alone', () => {
    const full = acsPort({ redirect: true });
    const g = deriveIommuGroups(switchTopology({ rootAcs: full, dspAcs: [full, full] }));
    for (const bdf of [RP1, USP, DSP0, DSP1, A, B, C])
      expect(g.groups[g.groupOf.get(bdf)!]!.members).toEqual([bdf]);
  });

  it('downstream ports without ACS below an isolated root port: each endpoint joins its port (pci_device_group)', () => {
    const g = deriveIommuGroups(switchTopology({ rootAcs: acsPort({ redirect: true }) }));
    expect(g.groups[g.groupOf.get(A)!]!.members).toEqual([DSP0, A]);
    expect(g.groups[g.groupOf.get(B)!]!.members).toEqual([DSP1, B]);
  });

  it('ACS redirect off (SV+UF only) does not isolate', () => {
    const g = deriveIommuGroups(twoSocketServer());
    expect(sameGroup(g, '0000:03:00.0', '0000:04:00.0')).toBe(true);
    const on = deriveIommuGroups(twoSocketServer({ acsRedirect: true }));
    expect(sameGroup(on, '0000:03:00.0', '0000:04:00.0')).toBe(false);
  });

  it('a multi-function device without ACS is one group; with ACS on each function it splits', () => {
    const build = (acs: boolean) =>
      buildTopology({
        hostBridges: [
          {
            children: [
              rootPort({ device: 1, acs: acsPort({ redirect: true }) }, [
                endpoint({ function: 0, ...(acs ? { acs: acsPort({ redirect: true }) } : {}) }),
                endpoint({ function: 1, ...(acs ? { acs: acsPort({ redirect: true }) } : {}) }),
              ]),
            ],
          },
        ],
      });
    const without = deriveIommuGroups(build(false));
    expect(sameGroup(without, '0000:01:00.0', '0000:01:00.1')).toBe(true);
    expect(sameGroup(without, '0000:01:00.0', '0000:00:01.0')).toBe(false);
    expect(without.groups[without.groupOf.get('0000:01:00.0')!]!.reasons[0]).toContain('multi-function');
    expect(sameGroup(deriveIommuGroups(build(true)), '0000:01:00.0', '0000:01:00.1')).toBe(false);
  });

  it('functions behind a PCIe-to-PCI bridge share its group', () => {
    const t = buildTopology({
      hostBridges: [
        {
          children: [
            rootPort({ device: 1, acs: acsPort({ redirect: true }) }, [
              pciBridge({}, [endpoint({ device: 1 }), endpoint({ device: 2 })]),
            ]),
          ],
        },
      ],
    });
    const g = deriveIommuGroups(t);
    expect(sameGroup(g, '0000:01:00.0', '0000:02:01.0', '0000:02:02.0')).toBe(true);
    expect(sameGroup(g, '0000:01:00.0', '0000:00:01.0')).toBe(false);
  });

  it('unknown ACS merges conservatively and says so', () => {
    const t = switchTopology({
      rootAcs: acsPort({ redirect: true }),
      dspAcs: [acsUnknown('no extended config'), acsPort({ redirect: true })],
    });
    const g = deriveIommuGroups(t);
    const group = g.groups[g.groupOf.get(A)!]!;
    expect(group.members).toEqual([DSP0, A]);
    expect(group.certainty).toBe('derived-conservatively');
    expect(group.reasons[0]).toContain('unknown (no extended config)');
    expect(g.groups[g.groupOf.get(B)!]!.certainty).toBe('derived');
  });

  it('gives every function of every built-in topology exactly one group', () => {
    for (const b of BUILTIN_TOPOLOGIES) {
      const t = b.build();
      const g = deriveIommuGroups(t);
      expect(g.groupOf.size).toBe(t.functions.size);
      expect(g.groups.flatMap((x) => x.members).sort()).toEqual([...t.functions.keys()].sort());
    }
  });
});

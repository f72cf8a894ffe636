/**
 * `p2p --matrix`: every cell agrees with calcP2pDecision (the p2pdma.c model the oracle vectors
 * pin); one fixture per remedy kind and per "depends on" outcome; the CPU rule's facts; captures.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  acsKnown,
  acsUnknown,
  buildTopology,
  builtinTopology,
  type CpuInfo,
  calcP2pDecision,
  cpuFacts,
  endpoint,
  type FunctionSpec,
  formatP2pMatrix,
  importSysfs,
  iommuGroupReport,
  matrixCell,
  matrixPair,
  type P2pMatrix,
  p2pMatrix,
  p2pMatrixToJson,
  parseCpuOption,
  parseKernelCmdline,
  rootPort,
} from '../../src/platform/index.ts';
import { acsArb, portChildren } from './pci-arbitraries.ts';
import { A, B, C, DSP0, switchTopology } from './pci-fixtures.ts';

const REDIRECT = acsKnown(0x7f, 0x1d); // SV RR CR UF, as Linux boots a port with an IOMMU
const NO_REDIRECT = acsKnown(0x7f, 0x11);

function pair(m: P2pMatrix, a: string, b: string) {
  const i = m.endpoints.findIndex((e) => e.bdf === a || e.label === a);
  const j = m.endpoints.findIndex((e) => e.bdf === b || e.label === b);
  return matrixPair(m, i, j)!;
}

/** An endpoint of one of the classes the matrix labels (GPU, NIC, NVMe, accelerator). */
const endpointLeaf = fc
  .constantFrom(0x030200, 0x020700, 0x010802, 0x120000)
  .map((classCode) => [endpoint({ classCode })] as readonly FunctionSpec[]);

const topologyArb = fc
  .record({
    bridges: fc.array(
      fc.array(fc.tuple(acsArb, portChildren(2, endpointLeaf)), { minLength: 1, maxLength: 3 }),
      {
        minLength: 1,
        maxLength: 2,
      },
    ),
    host: fc.constantFrom(0x2020, 0x3c00, 0x9a14),
    cpu: fc.constantFrom<CpuInfo>(
      { vendor: 'intel', family: 6 },
      { vendor: 'amd', family: 0x19 },
      { vendor: 'amd', family: 0x15 },
      { vendor: 'arm', family: undefined },
    ),
  })
  .map(({ bridges, host, cpu }) =>
    buildTopology({
      cpu,
      hostBridges: bridges.map((ports, h) => ({
        busStart: h * 0x80,
        busEnd: h * 0x80 + 0x7f,
        vendorId: 0x8086,
        deviceId: host,
        children: ports.map(([acs, kids], i) => rootPort({ device: i + 1, acs }, kids)),
      })),
    }),
  );

describe('every cell is the kernel decision', () => {
  test.prop([topologyArb], { numRuns: 60 })(
    'map type, distance and common upstream equal calcP2pDecision both ways; certain cells have no outcomes',
    (topology) => {
      const m = p2pMatrix(topology);
      const n = m.endpoints.length;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          if (i === j) continue;
          const cell = matrixPair(m, i, j)!;
          const d = calcP2pDecision(topology, m.endpoints[i]!.bdf, m.endpoints[j]!.bdf);
          // The fast grid and the full answer agree.
          expect(matrixCell(m, i, j)).toEqual({
            mapType: cell.mapType,
            distance: cell.distance,
            certainty: cell.certainty,
          });
          expect([cell.mapType, cell.distance, cell.commonUpstream]).toEqual([
            d.mapType,
            d.distance,
            d.commonUpstream,
          ]);
          if (cell.certainty === 'certain') expect(cell.outcomes).toEqual([]);
          else expect(cell.outcomes.length).toBeGreaterThanOrEqual(2);
          // A depends answer never rests on a known CPU with known IDs and known ACS.
          if (d.acsUnknown.length === 0 && cell.certainty === 'depends')
            expect.fail('depends without unknowns');
        }
    },
  );
});

describe('remedies, one fixture each', () => {
  test('ACS redirect: the bridges with their bits and the disable_acs_redir value; with it the switch routes', () => {
    const x86 = builtinTopology('x86-2s')!;
    const m = p2pMatrix(x86.build());
    const p = pair(m, 'gpu0', 'nic0');
    expect([p.mapType, p.distance, p.certainty]).toEqual(['through-host-bridge', 4, 'certain']);
    expect(p.remedies).toEqual([
      {
        kind: 'acs-redirect',
        bridges: [
          { bdf: '0000:02:00.0', bits: ['ReqRedir', 'CmpltRedir'] },
          { bdf: '0000:02:01.0', bits: ['ReqRedir', 'CmpltRedir'] },
        ],
        param: 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
        becomes: 'bus-address',
      },
    ]);
    // Applying the printed remedy gives what it promised.
    const booted = p2pMatrix(x86.build(parseKernelCmdline((p.remedies[0] as { param: string }).param)));
    expect(pair(booted, 'gpu0', 'nic0')).toMatchObject({ mapType: 'bus-address', distance: 4, remedies: [] });
    const text = formatP2pMatrix(x86.build(), m, 'built-in two-socket-server');
    expect(text).toContain(
      'remedy: ACS redirect set on 0000:02:00.0 (ReqRedir CmpltRedir), 0000:02:01.0 (ReqRedir CmpltRedir); boot with pci=disable_acs_redir=0000:02:00.0;0000:02:01.0 to let the switch route it (bus-address)',
    );
    expect(text).toMatch(/^gpu0 +X +HB4 +HB6 +HB6$/m);
  });

  test('Egress Control counts as redirect and is named', () => {
    const t = switchTopology({ dspAcs: [acsKnown(0x7f, 0x20), NO_REDIRECT] });
    const p = pair(p2pMatrix(t, { devices: [A, B] }), A, B);
    expect(p.mapType).toBe('through-host-bridge');
    expect(p.remedies[0]).toEqual({
      kind: 'acs-redirect',
      bridges: [{ bdf: DSP0, bits: ['EgressCtrl'] }],
      param: `pci=disable_acs_redir=${DSP0}`,
      becomes: 'bus-address',
    });
  });

  test('host bridge not on the allowlist: its IDs, and no kernel parameter helps', () => {
    const m = p2pMatrix(builtinTopology('laptop')!.build());
    const p = pair(m, 'gpu0', 'nvme0');
    expect([p.mapType, p.certainty]).toEqual(['not-supported', 'certain']);
    expect(p.remedies).toEqual([
      {
        kind: 'allowlist',
        hostBridges: [
          { id: 'pci0000:00', bdf: '0000:00:00.0', vendorId: 0x8086, deviceId: 0x9a14, listed: 'no' },
        ],
      },
    ]);
  });

  test('redirect and a refusing host bridge: both remedies', () => {
    const t = switchTopology({ hostDevice: 0x9a14, dspAcs: [REDIRECT, REDIRECT] });
    const p = pair(p2pMatrix(t, { devices: [A, B] }), A, B);
    expect(p.mapType).toBe('not-supported');
    expect(p.remedies.map((r) => r.kind)).toEqual(['acs-redirect', 'allowlist']);
  });

  test('an allowlist entry for devices under one host bridge only (REQ_SAME_HOST_BRIDGE)', () => {
    const t = buildTopology({
      cpu: { vendor: 'intel', family: 6 },
      hostBridges: [0, 0x80].map((busStart) => ({
        busStart,
        busEnd: busStart + 0x7f,
        vendorId: 0x8086,
        deviceId: 0x3c00,
        children: [rootPort({ device: 1 }, [endpoint({ classCode: 0x030200 })])],
      })),
    });
    const m = p2pMatrix(t);
    const p = matrixPair(m, 0, 1)!;
    expect(p.mapType).toBe('not-supported');
    expect(p.remedies).toEqual([
      {
        kind: 'allowlist',
        hostBridges: [
          {
            id: 'pci0000:00',
            bdf: '0000:00:00.0',
            vendorId: 0x8086,
            deviceId: 0x3c00,
            listed: 'same-host-bridge-only',
          },
          {
            id: 'pci0000:80',
            bdf: '0000:80:00.0',
            vendorId: 0x8086,
            deviceId: 0x3c00,
            listed: 'same-host-bridge-only',
          },
        ],
      },
    ]);
    expect(formatP2pMatrix(t, m, 't')).toContain('only for devices under that one host bridge');
  });
});

describe('verdicts that know what they do not know', () => {
  test('ACS unknown below the common device: both outcomes, never a confident answer', () => {
    const t = switchTopology({
      dspAcs: [acsUnknown('lspci: <access denied>'), NO_REDIRECT],
      hostDevice: 0x9a14,
    });
    const p = pair(p2pMatrix(t, { devices: [A, B] }), A, B);
    expect(p.certainty).toBe('depends');
    expect(p.mapType).toBe('bus-address');
    expect(p.missing).toEqual([`the ACS control of ${DSP0} (lspci: <access denied>)`]);
    expect(p.outcomes).toEqual([
      { if: `ACS redirect is off at ${DSP0}`, mapType: 'bus-address' },
      { if: `ACS redirect is on at ${DSP0}`, mapType: 'not-supported' },
    ]);
  });

  test('CPU unknown and the host bridge refused: depends on the AMD Zen rule', () => {
    const t = switchTopology({
      cpu: { vendor: 'unknown', family: undefined },
      hostVendor: 0x1def,
      hostDevice: 0xe100,
    });
    const m = p2pMatrix(t, { devices: [A, C] });
    expect(m.cpu.rule).toBe('unknown');
    const p = pair(m, A, C);
    expect([p.mapType, p.certainty]).toEqual(['not-supported', 'depends']);
    expect(p.missing).toEqual(['the CPU vendor and family']);
    expect(p.outcomes).toEqual([
      { if: 'the CPU is AMD family 0x17 (Zen) or newer', mapType: 'through-host-bridge' },
      { if: 'otherwise', mapType: 'not-supported' },
    ]);
    // --cpu settles it either way.
    expect(pair(p2pMatrix(t, { devices: [A, C], cpu: { vendor: 'amd', family: 0x19 } }), A, C)).toMatchObject(
      {
        mapType: 'through-host-bridge',
        certainty: 'certain',
      },
    );
    expect(pair(p2pMatrix(t, { devices: [A, C], cpu: { vendor: 'intel', family: 6 } }), A, C)).toMatchObject({
      mapType: 'not-supported',
      certainty: 'certain',
    });
  });

  test('an AMD CPU of unknown family: depends on the family', () => {
    const t = switchTopology({
      cpu: { vendor: 'amd', family: undefined },
      hostVendor: 0x1022,
      hostDevice: 0x1480,
    });
    const p = pair(p2pMatrix(t, { devices: [A, C] }), A, C);
    expect(p.missing).toEqual(['the AMD CPU family (the CPU rule needs 0x17 or newer)']);
  });

  test('host bridge IDs unknown (lspci -t without -nn): depends on the allowlist', () => {
    const t = buildTopology({
      cpu: { vendor: 'intel', family: 6 },
      hostBridges: [
        {
          children: [
            rootPort({ device: 0, acs: NO_REDIRECT }, [endpoint({ classCode: 0x030200 })]),
            rootPort({ device: 1, acs: NO_REDIRECT }, [endpoint({ classCode: 0x020000 })]),
          ],
        },
      ],
    });
    const p = matrixPair(p2pMatrix(t), 0, 1)!;
    expect([p.mapType, p.certainty]).toEqual(['not-supported', 'depends']);
    expect(p.missing).toEqual(['the vendor/device IDs of host bridge 0000:00:00.0']);
    expect(p.outcomes).toEqual([
      { if: 'its IDs are on the P2PDMA allowlist', mapType: 'through-host-bridge' },
      { if: 'otherwise', mapType: 'not-supported' },
    ]);
  });

  test('CPU vendor inferred from the host bridges, and the inference stated', () => {
    const intel = switchTopology({ cpu: { vendor: 'unknown', family: undefined } });
    expect(cpuFacts(intel)).toEqual({
      cpu: { vendor: 'intel', family: undefined },
      source: 'inferred: every host bridge is Intel (8086), so the CPU is Intel',
      rule: 'does-not-apply',
    });
    const amd = switchTopology({ cpu: { vendor: 'unknown', family: undefined }, hostVendor: 0x1022 });
    expect(cpuFacts(amd).rule).toBe('unknown');
    expect(cpuFacts(amd).source).toBe(
      'inferred: every host bridge is AMD (1022), so the CPU is AMD (family unknown)',
    );
  });

  test('--cpu syntax', () => {
    expect(parseCpuOption('amd:0x19')).toEqual({ vendor: 'amd', family: 0x19 });
    expect(parseCpuOption('intel:6')).toEqual({ vendor: 'intel', family: 6 });
    expect(parseCpuOption('ARM')).toEqual({ vendor: 'arm', family: undefined });
    expect(parseCpuOption('amd:zen')).toBeUndefined();
    expect(parseCpuOption('power9')).toBeUndefined();
  });
});

describe('filters and JSON', () => {
  test('by class and by device list', () => {
    const t = builtinTopology('x86-2s')!.build();
    expect(p2pMatrix(t, { classes: ['nic'] }).endpoints.map((e) => e.label)).toEqual(['nic0', 'nic1']);
    expect(p2pMatrix(t, { classes: ['gpu', 'storage'] }).endpoints.map((e) => e.label)).toEqual([
      'gpu0',
      'nvme0',
    ]);
    expect(p2pMatrix(t, { devices: ['0000:81:00.0', '0000:03:00.0'] }).endpoints.map((e) => e.label)).toEqual(
      ['nic1', 'gpu0'],
    );
  });

  test('JSON holds every unordered pair once with the reason the kernel logs', () => {
    const t = builtinTopology('x86-2s')!.build();
    const json = p2pMatrixToJson(t, p2pMatrix(t), 'x') as { pairs: Record<string, unknown>[] };
    expect(json.pairs).toHaveLength(6);
    expect(json.pairs[0]).toMatchObject({ a: 'gpu0', b: 'nic0', cell: 'HB4', certainty: 'certain' });
    expect(json.pairs[0]!.reason).toBe(calcP2pDecision(t, '0000:03:00.0', '0000:04:00.0').reason);
  });
});

describe('on the captures', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'physr-matrix-'));
    for (const tarball of [
      '40intel64-2g2n4c+pcilocality',
      '2pa-pcidomain32bits',
      '40intel64-4n10c+pci-conflicts',
    ])
      execFileSync('tar', ['xjf', `/work/shared/data/captures/hwloc-sysfs/${tarball}.tar.bz2`, '-C', work]);
  }, 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('gpu-vm-6.18: every pair refused by the host bridge 8086:0d57, certainly (CPU Intel, IDs known)', () => {
    const { topology } = importSysfs('/work/shared/data/captures/gpu-vm-6.18/snap');
    const m = p2pMatrix(topology);
    // virtio-blk x2 (class 01), virtio-net (02), the H200 (03); the two class ff functions are not DMA peers here.
    expect(m.endpoints.map((e) => `${e.label}=${e.bdf}`)).toEqual([
      'storage0=0000:00:01.0',
      'storage1=0000:00:02.0',
      'nic0=0000:00:03.0',
      'gpu0=0000:00:06.0',
    ]);
    for (const [i, j] of [
      [0, 1],
      [0, 2],
      [0, 3],
      [1, 2],
      [1, 3],
      [2, 3],
    ] as const) {
      const p = matrixPair(m, i, j)!;
      expect(p).toMatchObject({ mapType: 'not-supported', distance: 2, certainty: 'certain' });
      expect(p.remedies).toEqual([
        {
          kind: 'allowlist',
          hostBridges: [
            { id: 'pci0000:00', bdf: '0000:00:00.0', vendorId: 0x8086, deviceId: 0x0d57, listed: 'no' },
          ],
        },
      ]);
    }
  });

  test.each(['40intel64-2g2n4c+pci', '2pa-pcidomain32bits', '40intel64-4n10c+pci-conflicts'])(
    'hwloc %s: every cell is the kernel decision; groups cover every function once, IOMMU unknown',
    (dir) => {
      const { topology, iommu } = importSysfs(join(work, dir));
      const m = p2pMatrix(topology);
      for (let i = 0; i < m.endpoints.length; i++)
        for (let j = i + 1; j < m.endpoints.length; j++) {
          const d = calcP2pDecision(topology, m.endpoints[i]!.bdf, m.endpoints[j]!.bdf);
          expect(matrixCell(m, i, j)).toMatchObject({ mapType: d.mapType, distance: d.distance });
        }
      // hwloc copies neither kernel/iommu_groups nor /proc/iomem: whether there was an IOMMU is unknown.
      expect(iommu).toBe('unknown');
      const report = iommuGroupReport(topology, iommu!);
      const members = report.groups.flatMap((g) => g.derived.members).sort();
      expect(members).toEqual([...topology.functions.keys()].sort());
    },
  );

  test('hwloc 2pa (two PCI domains, host bridges 8086:1237): four endpoints, every pair certainly refused', () => {
    const { topology } = importSysfs(join(work, '2pa-pcidomain32bits'));
    const m = p2pMatrix(topology);
    expect(m.endpoints.map((e) => e.bdf)).toEqual([
      '0000:00:01.1',
      '0000:00:02.0',
      '0000:00:03.0',
      '10000:00:04.0',
    ]);
    for (let i = 0; i < 4; i++)
      for (let j = i + 1; j < 4; j++)
        expect(matrixCell(m, i, j)).toEqual({ mapType: 'not-supported', distance: 2, certainty: 'certain' });
    expect(m.hostBridges.map((h) => [h.id, h.deviceId, h.listed])).toEqual([
      ['pci0000:00', 0x1237, 'no'],
      ['pci10000:00', 0x1237, 'no'],
    ]);
    // 40intel64-4n10c holds one DMA endpoint: no pairs.
    expect(p2pMatrix(importSysfs(join(work, '40intel64-4n10c+pci-conflicts')).topology).codes.length).toBe(0);
  });

  test('hwloc 40intel64 (64-byte config, ACS unknown): the two ports of each dual NIC depend on ACS', () => {
    const { topology } = importSysfs(join(work, '40intel64-2g2n4c+pci'));
    const m = p2pMatrix(topology, { classes: ['nic'] });
    expect(m.endpoints.map((e) => e.bdf)).toEqual([
      '0000:02:00.0',
      '0000:02:00.1',
      '0000:03:00.0',
      '0000:03:00.1',
    ]);
    const dual = pair(m, '0000:02:00.0', '0000:02:00.1');
    expect(dual).toMatchObject({
      mapType: 'bus-address',
      distance: 2,
      certainty: 'depends',
      commonUpstream: '0000:00:05.0',
    });
    expect(dual.outcomes.map((o) => o.mapType)).toEqual(['bus-address', 'not-supported']);
    // Across root ports there is no common device: ACS plays no part, the host bridge 8086:3407 refuses.
    expect(pair(m, '0000:02:00.0', '0000:03:00.0')).toMatchObject({
      mapType: 'not-supported',
      certainty: 'certain',
    });
  });
});

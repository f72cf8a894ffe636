/**
 * The P2PDMA facts written down from drivers/pci/p2pdma.c in ../shared/data/oracles/p2pdma-rules.json
 * (the host-bridge allowlist with its flags, the CPU rule, the ACS redirect bits), each driven
 * through calcP2pDecision on small topologies built in code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ACS_CR,
  ACS_DT,
  ACS_EC,
  ACS_RR,
  ACS_SV,
  ACS_TB,
  ACS_UF,
  acsKnown,
  buildTopology,
  type CpuInfo,
  calcP2pDecision,
  P2P_HOST_BRIDGE_ALLOWLIST,
  rootPort,
} from '../../src/platform/index.ts';
import { A, B, C, ep, INTEL, switchTopology } from './pci-fixtures.ts';

interface OracleEntry {
  readonly vendor: string;
  readonly device: string;
  readonly flags: readonly string[];
}

const oracle = JSON.parse(
  readFileSync(
    join(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'oracles', 'p2pdma-rules.json'),
    'utf8',
  ),
) as { allowlist: OracleEntry[]; cpu_rule: string; acs_redirect_bits: string[] };

/** The oracle's device field: a hex id, or the PCI_ANY_ID wildcard. */
function deviceOf(entry: OracleEntry): number | 'any' {
  return entry.device.startsWith('PCI_ANY_ID') ? 'any' : Number.parseInt(entry.device, 16);
}

/** Two host bridges with the given IDs, one endpoint under each (X under the first, Y the second). */
function twoBridges(vendorId: number, deviceId: number, cpu: CpuInfo = INTEL) {
  return buildTopology({
    cpu,
    hostBridges: [
      { busStart: 0, busEnd: 0x7f, vendorId, deviceId, children: [rootPort({ device: 1 }, [ep('x')])] },
      { busStart: 0x80, busEnd: 0xff, vendorId, deviceId, children: [rootPort({ device: 1 }, [ep('y')])] },
    ],
  });
}
const X = '0000:01:00.0';
const Y = '0000:81:00.0';

describe('p2pdma-rules.json: the host-bridge allowlist', () => {
  it('our allowlist holds exactly the oracle entries, flags included', () => {
    const ours = P2P_HOST_BRIDGE_ALLOWLIST.map((e) => [e.vendorId, e.deviceId, e.requireSameHostBridge]);
    const theirs = oracle.allowlist.map((e) => [
      Number.parseInt(e.vendor, 16),
      deviceOf(e),
      e.flags.includes('REQ_SAME_HOST_BRIDGE'),
    ]);
    expect(ours).toEqual(theirs);
  });

  for (const entry of oracle.allowlist) {
    const vendor = Number.parseInt(entry.vendor, 16);
    const device = deviceOf(entry);
    const id = device === 'any' ? 0x4242 : device;
    const sameOnly = entry.flags.includes('REQ_SAME_HOST_BRIDGE');
    it(`${entry.vendor}:${entry.device}${sameOnly ? ' (same host bridge only)' : ''}`, () => {
      // Under one host bridge (two root ports, no common switch): allowed for every entry.
      const one = calcP2pDecision(switchTopology({ hostVendor: vendor, hostDevice: id }), A, C);
      expect(one.mapType).toBe('through-host-bridge');
      expect(one.hostBridgeCheck).toMatchObject({ ran: true, allowed: true });
      // Across two host bridges of that kind: allowed unless the entry needs the same bridge.
      const two = calcP2pDecision(twoBridges(vendor, id), X, Y);
      expect(two.mapType).toBe(sameOnly ? 'not-supported' : 'through-host-bridge');
    });
  }

  it('a host bridge on no entry is refused, and the reason names its IDs', () => {
    const d = calcP2pDecision(twoBridges(0x8086, 0x9a14), X, Y);
    expect(d.mapType).toBe('not-supported');
    expect(d.reason).toContain('8086:9a14');
  });
});

describe('p2pdma-rules.json: the CPU rule', () => {
  it(oracle.cpu_rule, () => {
    expect(oracle.cpu_rule).toContain('family >= 0x17');
    const amd = (family: number) =>
      calcP2pDecision(twoBridges(0x1022, 0x1480, { vendor: 'amd', family }), X, Y);
    expect(amd(0x17).mapType).toBe('through-host-bridge');
    expect(amd(0x19).mapType).toBe('through-host-bridge');
    expect(amd(0x16).mapType).toBe('not-supported');
    // Not AMD: the allowlist decides, whatever the family.
    expect(calcP2pDecision(twoBridges(0x1022, 0x1480, { vendor: 'intel', family: 0x19 }), X, Y).mapType).toBe(
      'not-supported',
    );
    expect(
      calcP2pDecision(twoBridges(0x1022, 0x1480, { vendor: 'arm', family: undefined }), X, Y).mapType,
    ).toBe('not-supported');
  });
});

describe('p2pdma-rules.json: the ACS redirect bits', () => {
  const BITS: Record<string, number> = {
    SV: ACS_SV,
    TB: ACS_TB,
    RR: ACS_RR,
    CR: ACS_CR,
    UF: ACS_UF,
    EC: ACS_EC,
    DT: ACS_DT,
  };
  const redirecting = oracle.acs_redirect_bits.map((b) => /PCI_ACS_(\w+)/.exec(b)![1]!);
  const ALL = Object.values(BITS).reduce((a, b) => a | b, 0);
  for (const [name, bit] of Object.entries(BITS)) {
    const redirects = redirecting.includes(name);
    it(`ACS ${name} alone in a downstream port's control ${redirects ? 'sends P2P up' : 'leaves the switch path'}`, () => {
      const t = switchTopology({ dspAcs: [acsKnown(ALL, bit), acsKnown(ALL, 0)] });
      const d = calcP2pDecision(t, A, B);
      expect(d.mapType).toBe(redirects ? 'through-host-bridge' : 'bus-address');
      expect(d.acsRedirects.length).toBe(redirects ? 1 : 0);
    });
  }
  it('the oracle names exactly RR, CR and EC', () => {
    expect(redirecting.sort()).toEqual(['CR', 'EC', 'RR']);
  });
});

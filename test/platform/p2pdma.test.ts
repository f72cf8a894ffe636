import { describe, expect, it } from 'vitest';
import {
  ACS_CR,
  ACS_EC,
  ACS_RR,
  ACS_SV,
  ACS_UF,
  acsKnown,
  acsPort,
  acsUnknown,
  buildTopology,
  busAddressOf,
  calcP2pDecision,
  endpoint,
  findFunction,
  p2pDistanceMany,
  rcIntegratedEndpoint,
  rootPort,
} from '../../src/platform/index.ts';
import { A, B, C, DSP0, DSP1, ep, INTEL, MiB, RP1, switchTopology, USP } from './pci-fixtures.ts';

const CAP = ACS_SV | ACS_RR | ACS_CR | ACS_UF | ACS_EC;

describe('calcP2pDecision: common upstream switch', () => {
  it('same switch, no ACS: bus address, distance 4, path through the upstream port', () => {
    const d = calcP2pDecision(switchTopology(), A, B);
    expect(d.mapType).toBe('bus-address');
    expect(d.distance).toBe(4);
    expect(d.commonUpstream).toBe(USP);
    expect(d.path.map((h) => [h.bdf, h.role])).toEqual([
      [A, 'provider-side'],
      [DSP0, 'provider-side'],
      [USP, 'common'],
      [DSP1, 'client-side'],
      [B, 'client-side'],
    ]);
    expect(d.hostBridgeCheck.ran).toBe(false);
    expect(d.acsRedirects).toEqual([]);
  });

  it('ACS redirect on a downstream port forces traffic to an allowlisted host bridge', () => {
    const t = switchTopology({ dspAcs: [acsPort({ redirect: true }), acsPort({ redirect: false })] });
    const d = calcP2pDecision(t, A, B);
    expect(d.mapType).toBe('through-host-bridge');
    expect(d.distance).toBe(4);
    expect(d.acsRedirects).toEqual([DSP0]);
    expect(d.reason).toContain(`ACS redirect is set between the client and provider (${A})`);
    expect(d.reason).toContain(`pci=disable_acs_redir=${DSP0}`);
    expect(d.hostBridgeCheck).toMatchObject({ ran: true, allowed: true });
    expect(d.path.find((h) => h.bdf === DSP0)!.acsRedirect).toBe(true);
  });

  it('ACS redirect under a non-allowlisted host bridge: not supported, naming the port and the bridge', () => {
    const t = switchTopology({
      hostDevice: 0x9a14,
      dspAcs: [acsPort({ redirect: false }), acsPort({ redirect: true })],
    });
    const d = calcP2pDecision(t, A, B);
    expect(d.mapType).toBe('not-supported');
    expect(d.acsRedirects).toEqual([DSP1]);
    expect(d.reason).toContain(`pci=disable_acs_redir=${DSP1}`);
    expect(d.reason).toContain('not in P2PDMA whitelist: 8086:9a14');
    expect(d.distance).toBe(4);
  });

  it('counts every redirecting port in the list, in walk order', () => {
    const t = switchTopology({ dspAcs: [acsPort({ redirect: true }), acsPort({ redirect: true })] });
    expect(calcP2pDecision(t, A, B).acsRedirects).toEqual([DSP0, DSP1]);
  });

  it('Egress Control alone redirects; SV and UF alone do not', () => {
    const ec = switchTopology({ dspAcs: [acsKnown(CAP, ACS_EC), acsKnown(CAP, ACS_SV | ACS_UF)] });
    expect(calcP2pDecision(ec, A, B).mapType).toBe('through-host-bridge');
    const svuf = switchTopology({ dspAcs: [acsKnown(CAP, ACS_SV | ACS_UF), acsKnown(CAP, ACS_SV | ACS_UF)] });
    expect(calcP2pDecision(svuf, A, B).mapType).toBe('bus-address');
  });

  it("the common device's own redirect counts; one above it does not", () => {
    const onCommon = switchTopology({ upstreamAcs: acsKnown(CAP, ACS_RR) });
    expect(calcP2pDecision(onCommon, A, B).acsRedirects).toEqual([USP]);
    const above = switchTopology({ rootAcs: acsPort({ redirect: true }) });
    expect(calcP2pDecision(above, A, B).mapType).toBe('bus-address');
  });

  it('a device reaching its own BAR: bus address, distance 0', () => {
    const d = calcP2pDecision(switchTopology(), A, A);
    expect(d).toMatchObject({ mapType: 'bus-address', distance: 0, commonUpstream: A });
    expect(d.path).toEqual([{ bdf: A, acsRedirect: false, role: 'common' }]);
  });

  it('two functions of one device: bus address, distance 2', () => {
    const t = buildTopology({
      cpu: INTEL,
      hostBridges: [
        {
          vendorId: 0x8086,
          deviceId: 0x9a14,
          children: [rootPort({ device: 1 }, [ep('f0'), ep('f1', { function: 1 })])],
        },
      ],
    });
    expect(calcP2pDecision(t, '0000:01:00.0', '0000:01:00.1')).toMatchObject({
      mapType: 'bus-address',
      distance: 2,
      commonUpstream: RP1,
    });
  });
});

describe('calcP2pDecision: through the host bridge', () => {
  it('different root ports under an allowlisted host bridge', () => {
    const d = calcP2pDecision(switchTopology(), A, C);
    expect(d.mapType).toBe('through-host-bridge');
    expect(d.commonUpstream).toBeUndefined();
    expect(d.distance).toBe(4 + 2); // provider chain of 4 plus client chain of 2
    expect(d.hostBridgeCheck.rule).toContain('8086:2020');
    expect(d.path[0]!.bdf).toBe(A);
    expect(d.path.at(-1)!.bdf).toBe(C);
  });

  it('different root ports under a non-allowlisted host bridge', () => {
    const d = calcP2pDecision(switchTopology({ hostDevice: 0x1234 }), A, C);
    expect(d.mapType).toBe('not-supported');
    expect(d.reason).toContain('do not share an upstream bridge or whitelisted host bridge');
    expect(d.reason).toContain('8086:1234');
  });

  function twoBridges(devA: number, devB: number, cpu = INTEL) {
    return buildTopology({
      cpu,
      hostBridges: [
        {
          busStart: 0,
          busEnd: 0x7f,
          vendorId: 0x8086,
          deviceId: devA,
          children: [rootPort({ device: 1 }, [ep('x')])],
        },
        {
          busStart: 0x80,
          busEnd: 0xff,
          vendorId: 0x8086,
          deviceId: devB,
          children: [rootPort({ device: 1 }, [ep('y')])],
        },
      ],
    });
  }
  const X = '0000:01:00.0';
  const Y = '0000:81:00.0';

  it('two different host bridges: allowed only when both are allowlisted without REQ_SAME_HOST_BRIDGE', () => {
    expect(calcP2pDecision(twoBridges(0x2020, 0x09a2), X, Y).mapType).toBe('through-host-bridge');
    const same = calcP2pDecision(twoBridges(0x3c00, 0x3c00), X, Y);
    expect(same.mapType).toBe('not-supported');
    expect(same.hostBridgeCheck.rule).toContain('only for devices under that same host bridge');
    expect(calcP2pDecision(twoBridges(0x2020, 0x9a14), X, Y).mapType).toBe('not-supported');
    expect(calcP2pDecision(twoBridges(0x9a14, 0x2020), X, Y).reason).toContain('8086:9a14');
  });

  it('REQ_SAME_HOST_BRIDGE entries allow devices under that one bridge', () => {
    expect(calcP2pDecision(switchTopology({ hostDevice: 0x3c01 }), A, C).mapType).toBe('through-host-bridge');
  });

  it('the Google vendor entry matches any device id', () => {
    expect(calcP2pDecision(switchTopology({ hostVendor: 0x1ae0, hostDevice: 0x4242 }), A, C).mapType).toBe(
      'through-host-bridge',
    );
  });

  it('AMD family 0x17 and newer pass by the CPU rule; older AMD and other CPUs do not', () => {
    const t = (family: number) => twoBridges(0x1480, 0x1480, { vendor: 'amd', family });
    const zen = calcP2pDecision(t(0x17), X, Y);
    expect(zen.mapType).toBe('through-host-bridge');
    expect(zen.hostBridgeCheck.rule).toContain('CPU rule');
    expect(calcP2pDecision(t(0x16), X, Y).mapType).toBe('not-supported');
    expect(
      calcP2pDecision(twoBridges(0x1480, 0x1480, { vendor: 'arm', family: undefined }), X, Y).mapType,
    ).toBe('not-supported');
  });

  it('identifies a host bridge without a 00.0 function by a root port first on its root bus (Skylake)', () => {
    const t = buildTopology({
      cpu: INTEL,
      hostBridges: [
        {
          hostBridgeDevice: false,
          children: [
            rootPort({ device: 1, vendorId: 0x8086, deviceId: 0x2030 }, [ep('x')]),
            rootPort({ device: 2, vendorId: 0x8086, deviceId: 0x2031 }, [ep('y')]),
          ],
        },
      ],
    });
    expect(calcP2pDecision(t, '0000:01:00.0', '0000:02:00.0').mapType).toBe('through-host-bridge');
  });

  it('a root bus led by an RC-integrated endpoint away from 00.0 identifies no host bridge', () => {
    const t = buildTopology({
      cpu: INTEL,
      hostBridges: [
        {
          vendorId: 0x8086,
          deviceId: 0x2020,
          hostBridgeDevice: false,
          children: [
            rcIntegratedEndpoint({ device: 2, vendorId: 0x8086, deviceId: 0x2020 }),
            rootPort({ device: 3 }, [ep('x')]),
          ],
        },
      ],
    });
    const d = calcP2pDecision(t, '0000:00:02.0', '0000:01:00.0');
    expect(d.mapType).toBe('not-supported');
    expect(d.hostBridgeCheck.rule).toContain('no function at 00.0');
  });
});

describe('calcP2pDecision: unknown ACS', () => {
  it('treats an unreadable ACS capability as absent and says so', () => {
    const t = switchTopology({
      dspAcs: [acsUnknown('lspci without -vvv as root'), acsPort({ redirect: false })],
    });
    const d = calcP2pDecision(t, A, B);
    expect(d.mapType).toBe('bus-address');
    expect(d.acsUnknown).toEqual([DSP0]);
    expect(d.path.find((h) => h.bdf === DSP0)!.acsRedirect).toBe('unknown');
    expect(d.reason).toContain('ACS state unknown for 0000:02:00.0');
  });

  it('still reports a known redirect next to an unknown port', () => {
    const t = switchTopology({ dspAcs: [acsUnknown('no config'), acsPort({ redirect: true })] });
    const d = calcP2pDecision(t, A, B);
    expect(d.mapType).toBe('through-host-bridge');
    expect(d.acsRedirects).toEqual([DSP1]);
    expect(d.acsUnknown).toEqual([DSP0]);
  });
});

describe('p2pDistanceMany and busAddressOf', () => {
  it('sums distances, and gives -1 for no clients or any refused client', () => {
    const t = switchTopology({ hostDevice: 0x9a14 });
    expect(p2pDistanceMany(t, A, [])).toMatchObject({ total: -1, mapType: 'not-supported' });
    expect(p2pDistanceMany(t, A, [A, B])).toMatchObject({ total: 4, mapType: 'bus-address' });
    const mixed = p2pDistanceMany(t, A, [B, C]);
    expect(mixed.total).toBe(-1);
    expect(mixed.decisions.map((d) => d.mapType)).toEqual(['bus-address', 'not-supported']);
    expect(p2pDistanceMany(switchTopology(), A, [B, C])).toMatchObject({
      total: 10,
      mapType: 'through-host-bridge',
    });
  });

  it('refuses unknown devices with ENODEV', () => {
    expect(() => calcP2pDecision(switchTopology(), A, '0000:42:00.0')).toThrow(/ENODEV/);
  });

  it('maps a BAR CPU address to its bus address by the host bridge offset', () => {
    const offset = 0x4000_0000_0000n;
    const t = buildTopology({
      hostBridges: [
        {
          busOffset: offset,
          mmio32: { base: offset + 0x8000_0000n, size: 0x1000_0000n },
          mmio64: { base: offset + 0x100_0000_0000n, size: 0x100_0000_0000n },
          children: [
            rootPort({ device: 1 }, [endpoint({ bars: [{ index: 0, size: MiB, prefetchable: true }] })]),
          ],
        },
      ],
    });
    const bar = findFunction(t, '0000:01:00.0')!.bars[0]!;
    expect(busAddressOf(t, bar.cpuAddress + 0x10n)).toBe(bar.cpuAddress + 0x10n - offset);
    expect(() => busAddressOf(t, 0x1000n)).toThrow(/EINVAL/);
  });
});

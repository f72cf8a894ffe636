/**
 * The words of a P2P decision, as drivers/pci/p2pdma.c logs them (calc_map_type_and_dist,
 * pci_p2pdma_distance_many's verbose mode, host_bridge_whitelist): a user reads these to learn why
 * two devices cannot do P2P DMA and which kernel parameter would change it, so each case pins the
 * whole line. Expected strings are written out by hand from the topology, not built by the model.
 */
import { describe, expect, it } from 'vitest';
import {
  acsPort,
  acsUnknown,
  buildTopology,
  busAddressOf,
  calcP2pDecision,
  p2pDistanceMany,
  rootPort,
} from '../../src/platform/index.ts';
import { A, B, C, DSP0, DSP1, ep, INTEL, RP1, switchTopology, USP } from './pci-fixtures.ts';

const RP2 = '0000:00:02.0';
const HOST = '0000:00:00.0';
const SKYLAKE = `host bridge ${HOST} (8086:2020) is on the P2PDMA allowlist (Intel Skylake-E)`;
const NOT_NEEDED = {
  ran: false,
  allowed: false,
  rule: 'not needed: traffic stays below the common upstream device',
};

describe('a decision below a common upstream device', () => {
  it('a device reaching its own BAR', () => {
    const d = calcP2pDecision(switchTopology(), A, A);
    expect(d.reason).toBe(`${A} reaches its own BAR: bus address, distance 0`);
    expect(d.hostBridgeCheck).toEqual(NOT_NEEDED);
  });

  it('two devices under one switch without redirect: the common device and the distance', () => {
    const d = calcP2pDecision(switchTopology(), A, B);
    expect(d.reason).toBe(
      `${USP} is the common upstream device and no ACS redirect is set on the path: bus address, distance 4`,
    );
    expect(d.hostBridgeCheck).toEqual(NOT_NEEDED);
  });

  it('two unreadable ACS capabilities are both named, comma-separated', () => {
    const t = switchTopology({ dspAcs: [acsUnknown('capture'), acsUnknown('capture')] });
    const d = calcP2pDecision(t, A, B);
    expect(d.acsUnknown).toEqual([DSP0, DSP1]);
    expect(d.reason).toContain(
      `; ACS state unknown for ${DSP0}, ${DSP1} (capture lacked extended config space)`,
    );
  });
});

describe('a decision through the host bridge', () => {
  it('a redirect on the path: the port list for pci=disable_acs_redir and the allowlist entry', () => {
    const d = calcP2pDecision(
      switchTopology({ dspAcs: [acsPort({ redirect: true }), acsPort({ redirect: false })] }),
      A,
      B,
    );
    expect(d.mapType).toBe('through-host-bridge');
    expect(d.reason).toBe(
      `ACS redirect is set between the client and provider (${A}); to disable ACS redirect for this path, ` +
        `add the kernel parameter: pci=disable_acs_redir=${DSP0}; through the host bridge (${SKYLAKE})`,
    );
    expect(d.hostBridgeCheck).toEqual({ ran: true, allowed: true, rule: SKYLAKE });
  });

  it('every redirecting port goes into the one pci=disable_acs_redir= list, ;-separated', () => {
    const both = switchTopology({ dspAcs: [acsPort({ redirect: true }), acsPort({ redirect: true })] });
    expect(calcP2pDecision(both, A, B).reason).toContain(
      `add the kernel parameter: pci=disable_acs_redir=${DSP0};${DSP1}; through the host bridge`,
    );
  });

  it("the provider's own redirect counts when it is the common device (index 0 of its chain)", () => {
    // A switch downstream port as provider and the endpoint below it as client.
    const d = calcP2pDecision(
      switchTopology({ dspAcs: [acsPort({ redirect: true }), acsPort({ redirect: false })] }),
      DSP0,
      A,
    );
    expect(d.commonUpstream).toBe(DSP0);
    expect(d.acsRedirects).toEqual([DSP0]);
    expect(d.reason).toContain(`pci=disable_acs_redir=${DSP0}`);
  });

  it('no common upstream device: no redirect list, no unknown-ACS note, the whole path by side', () => {
    const t = switchTopology({ dspAcs: [acsPort({ redirect: true }), acsUnknown('capture')] });
    const d = calcP2pDecision(t, A, C);
    expect(d.acsRedirects).toEqual([]);
    expect(d.acsUnknown).toEqual([]);
    expect(d.reason).toBe(`${C} and ${A} share no upstream bridge; through the host bridge (${SKYLAKE})`);
    expect(d.path.map((h) => [h.bdf, h.role])).toEqual([
      [A, 'provider-side'],
      [DSP0, 'provider-side'],
      [USP, 'provider-side'],
      [RP1, 'provider-side'],
      [RP2, 'client-side'],
      [C, 'client-side'],
    ]);
  });

  it('a root port with unknown IDs identifying its host bridge cannot match the allowlist', () => {
    const t = buildTopology({
      cpu: INTEL,
      hostBridges: [
        {
          hostBridgeDevice: false,
          children: [rootPort({ device: 1 }, [ep('x')]), rootPort({ device: 2 }, [ep('y')])],
        },
      ],
    });
    const d = calcP2pDecision(t, '0000:01:00.0', '0000:02:00.0');
    expect(d.mapType).toBe('not-supported');
    expect(d.hostBridgeCheck.rule).toBe(
      `host bridge ${RP1} (????:????) has unknown vendor/device IDs, so it cannot match the allowlist`,
    );
  });

  it('one unknown ID is enough to miss the allowlist, even the any-device Google entry', () => {
    const rootsWith = (vendorId: number | undefined, deviceId: number | undefined) =>
      buildTopology({
        cpu: INTEL,
        hostBridges: [
          {
            hostBridgeDevice: false,
            children: [
              rootPort({ device: 1, vendorId, deviceId }, [ep('x')]),
              rootPort({ device: 2 }, [ep('y')]),
            ],
          },
        ],
      });
    const rule = (vendorId: number | undefined, deviceId: number | undefined) =>
      calcP2pDecision(rootsWith(vendorId, deviceId), '0000:01:00.0', '0000:02:00.0').hostBridgeCheck.rule;
    expect(rule(0x1ae0, undefined)).toBe(
      `host bridge ${RP1} (1ae0:????) has unknown vendor/device IDs, so it cannot match the allowlist`,
    );
    expect(rule(undefined, 0x2020)).toBe(
      `host bridge ${RP1} (????:2020) has unknown vendor/device IDs, so it cannot match the allowlist`,
    );
  });

  it('an AMD CPU whose family is unknown does not pass by the CPU rule', () => {
    const t = switchTopology({ cpu: { vendor: 'amd', family: undefined }, hostDevice: 0x1480 });
    expect(calcP2pDecision(t, A, C).mapType).toBe('not-supported');
  });
});

describe('two host bridges (host_bridge_whitelist checks each, neither as "the same bridge")', () => {
  function twoBridges(devA: number, devB: number) {
    const bridge = (busStart: number, deviceId: number, name: string) => ({
      busStart,
      busEnd: busStart + 0x7f,
      vendorId: 0x8086,
      deviceId,
      children: [rootPort({ device: 1 }, [ep(name)])],
    });
    return buildTopology({ cpu: INTEL, hostBridges: [bridge(0, devA, 'x'), bridge(0x80, devB, 'y')] });
  }
  const X = '0000:01:00.0';
  const Y = '0000:81:00.0';
  const UNDER = '(provider and client are under pci0000:00 and pci0000:80)';

  it("a same-bridge-only entry refuses on the provider's side", () => {
    const d = calcP2pDecision(twoBridges(0x3c00, 0x2020), X, Y);
    expect(d.hostBridgeCheck).toEqual({
      ran: true,
      allowed: false,
      rule: `host bridge ${HOST} (8086:3c00) is on the allowlist only for devices under that same host bridge ${UNDER}`,
    });
  });

  it("a same-bridge-only entry refuses on the client's side", () => {
    const d = calcP2pDecision(twoBridges(0x2020, 0x3c00), X, Y);
    expect(d.hostBridgeCheck.rule).toBe(
      `host bridge 0000:80:00.0 (8086:3c00) is on the allowlist only for devices under that same host bridge ${UNDER}`,
    );
    expect(d.mapType).toBe('not-supported');
  });

  it('both allowed: each bridge named with its allowlist entry', () => {
    const d = calcP2pDecision(twoBridges(0x2020, 0x09a2), X, Y);
    expect(d.hostBridgeCheck.rule).toBe(
      `both host bridges allowed: ${SKYLAKE}; host bridge 0000:80:00.0 (8086:09a2) is on the P2PDMA allowlist (Intel Ice Lake Xeon)`,
    );
  });
});

describe('pci_p2pdma_distance_many and pci_p2pdma_bus_addr_map', () => {
  it('no clients: no decisions; a refused client makes the whole set not supported', () => {
    const t = switchTopology({ hostDevice: 0x9a14 });
    expect(p2pDistanceMany(t, A, [])).toEqual({ decisions: [], total: -1, mapType: 'not-supported' });
    expect(p2pDistanceMany(t, A, [B, C]).mapType).toBe('not-supported');
  });

  it('an address in no BAR is EINVAL naming the address', () => {
    expect(() => busAddressOf(switchTopology(), 0x1234_5000n)).toThrow(
      'EINVAL: 0x12345000 is not inside any PCI memory BAR',
    );
  });
});

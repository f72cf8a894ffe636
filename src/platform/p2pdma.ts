/**
 * PCI peer-to-peer DMA decisions, following drivers/pci/p2pdma.c (calc_map_type_and_dist,
 * host_bridge_whitelist, cpu_supports_p2pdma, pci_p2pdma_distance_many, pci_p2pdma_bus_addr_map).
 * See /work/shared/data/oracles/p2pdma-rules.json for the procedure in words.
 *
 * In short: walk up from the provider; at each level look for that device in the client's upstream
 * chain. The first match is the common upstream device; the distance is the hops up from both sides.
 * If no device on the provider's side (up to and including the common device) nor on the client's side
 * (below it) has an ACS redirect bit (RR, CR, EC) set in its control register, the switch routes
 * the traffic: bus address. Otherwise (redirect, or no common device at all) traffic goes through the
 * host bridge, which is allowed only by the CPU rule (AMD family >= 0x17) or the host-bridge allowlist.
 */
import { fail, formatHex } from '../core/index.ts';
import { acsRedirectOf } from './pci-acs.ts';
import { barContaining, hostBridgeOf, hostBridgeRepresentative, upstreamChain } from './pci-query.ts';
import type { Bdf, CpuInfo, HostBridge, PciFunction, PciTopology } from './pci-types.ts';

export type P2pMapType = 'not-supported' | 'bus-address' | 'through-host-bridge';

export interface P2pHop {
  readonly bdf: Bdf;
  readonly acsRedirect: boolean | 'unknown';
  readonly role: 'provider-side' | 'common' | 'client-side';
}

export interface P2pDecision {
  readonly provider: Bdf;
  readonly client: Bdf;
  readonly mapType: P2pMapType;
  /** Hops from provider up to the common device plus from client up to it (computed even when refused). */
  readonly distance: number;
  /** The common upstream device, if any. */
  readonly commonUpstream: Bdf | undefined;
  /** Provider up to the common device, then down to the client (without one: up one side, down the other). */
  readonly path: readonly P2pHop[];
  /** Devices whose ACS redirect forced traffic up (the kernel's pci=disable_acs_redir list). */
  readonly acsRedirects: readonly Bdf[];
  /** Devices on the checked path whose ACS state the capture did not hold (treated as no ACS capability). */
  readonly acsUnknown: readonly Bdf[];
  readonly hostBridgeCheck: { readonly ran: boolean; readonly allowed: boolean; readonly rule: string };
  /** One line, as the kernel would log it. */
  readonly reason: string;
}

export interface P2pAllowlistEntry {
  readonly vendorId: number;
  /** `'any'` matches every device of the vendor (PCI_ANY_ID). */
  readonly deviceId: number | 'any';
  /** REQ_SAME_HOST_BRIDGE: allowed only when provider and client are under this very host bridge. */
  readonly requireSameHostBridge: boolean;
  readonly note: string;
}

/** The host bridges drivers/pci/p2pdma.c trusts to forward peer traffic between its root ports. */
export const P2P_HOST_BRIDGE_ALLOWLIST: readonly P2pAllowlistEntry[] = [
  { vendorId: 0x8086, deviceId: 0x3c00, requireSameHostBridge: true, note: 'Intel Xeon E5 / Core i7' },
  { vendorId: 0x8086, deviceId: 0x3c01, requireSameHostBridge: true, note: 'Intel Xeon E5 / Core i7' },
  {
    vendorId: 0x8086,
    deviceId: 0x2f00,
    requireSameHostBridge: true,
    note: 'Intel Xeon E7 v3 / E5 v3 / Core i7',
  },
  {
    vendorId: 0x8086,
    deviceId: 0x2f01,
    requireSameHostBridge: true,
    note: 'Intel Xeon E7 v3 / E5 v3 / Core i7',
  },
  { vendorId: 0x8086, deviceId: 0x2030, requireSameHostBridge: false, note: 'Intel Skylake-E' },
  { vendorId: 0x8086, deviceId: 0x2031, requireSameHostBridge: false, note: 'Intel Skylake-E' },
  { vendorId: 0x8086, deviceId: 0x2032, requireSameHostBridge: false, note: 'Intel Skylake-E' },
  { vendorId: 0x8086, deviceId: 0x2033, requireSameHostBridge: false, note: 'Intel Skylake-E' },
  { vendorId: 0x8086, deviceId: 0x2020, requireSameHostBridge: false, note: 'Intel Skylake-E' },
  { vendorId: 0x8086, deviceId: 0x09a2, requireSameHostBridge: false, note: 'Intel Ice Lake Xeon' },
  { vendorId: 0x1ae0, deviceId: 'any', requireSameHostBridge: false, note: 'Google SoCs' },
];

function id4(value: number | undefined): string {
  return value === undefined ? '????' : value.toString(16).padStart(4, '0');
}

/** cpu_supports_p2pdma: x86 AMD CPUs of family 0x17 (Zen) or newer route P2P through the root complex. */
export function cpuSupportsP2pdma(cpu: CpuInfo): boolean {
  return cpu.vendor === 'amd' && cpu.family !== undefined && cpu.family >= 0x17;
}

interface BridgeVerdict {
  readonly allowed: boolean;
  readonly rule: string;
}

/** __host_bridge_whitelist for one host bridge. */
function checkOneHostBridge(topology: PciTopology, hb: HostBridge, sameHostBridge: boolean): BridgeVerdict {
  const rep = hostBridgeRepresentative(topology, hb);
  if (rep === undefined)
    return {
      allowed: false,
      rule: `host bridge ${hb.id} has no function at 00.0 nor a root port first on its root bus to identify it`,
    };
  const name = `${rep.bdf ?? hb.id} (${id4(rep.vendorId)}:${id4(rep.deviceId)})`;
  if (rep.vendorId === undefined || rep.deviceId === undefined)
    return {
      allowed: false,
      rule: `host bridge ${name} has unknown vendor/device IDs, so it cannot match the allowlist`,
    };
  for (const entry of P2P_HOST_BRIDGE_ALLOWLIST) {
    if (entry.vendorId !== rep.vendorId) continue;
    if (entry.deviceId !== 'any' && entry.deviceId !== rep.deviceId) continue;
    if (entry.requireSameHostBridge && !sameHostBridge)
      return {
        allowed: false,
        rule: `host bridge ${name} is on the allowlist only for devices under that same host bridge`,
      };
    return { allowed: true, rule: `host bridge ${name} is on the P2PDMA allowlist (${entry.note})` };
  }
  return {
    allowed: false,
    rule: `host bridge ${name} not in P2PDMA whitelist: ${id4(rep.vendorId)}:${id4(rep.deviceId)}`,
  };
}

/** host_bridge_whitelist: one shared bridge is checked once; two different bridges must both pass. */
export function hostBridgeAllowlist(topology: PciTopology, provider: Bdf, client: Bdf): BridgeVerdict {
  const a = hostBridgeOf(topology, provider);
  const b = hostBridgeOf(topology, client);
  if (a.id === b.id) return checkOneHostBridge(topology, a, true);
  const va = checkOneHostBridge(topology, a, false);
  if (!va.allowed)
    return { allowed: false, rule: `${va.rule} (provider and client are under ${a.id} and ${b.id})` };
  const vb = checkOneHostBridge(topology, b, false);
  if (!vb.allowed)
    return { allowed: false, rule: `${vb.rule} (provider and client are under ${a.id} and ${b.id})` };
  return { allowed: true, rule: `both host bridges allowed: ${va.rule}; ${vb.rule}` };
}

function hop(fn: PciFunction, role: P2pHop['role']): P2pHop {
  return { bdf: fn.bdf, acsRedirect: acsRedirectOf(fn.acs), role };
}

/** calc_map_type_and_dist: the map type, distance and path between a P2P memory provider and a client. */
export function calcP2pDecision(topology: PciTopology, provider: Bdf, client: Bdf): P2pDecision {
  const up = upstreamChain(topology, provider);
  const down = upstreamChain(topology, client);
  const acsRedirects: Bdf[] = [];
  const acsUnknown: Bdf[] = [];
  const note = (fn: PciFunction): void => {
    const r = acsRedirectOf(fn.acs);
    if (r === true) acsRedirects.push(fn.bdf);
    else if (r === 'unknown') acsUnknown.push(fn.bdf);
  };

  let distA = 0;
  let distB = 0;
  let common = -1; // index of the common device in `up`
  let commonInDown = -1;
  for (let i = 0; i < up.length; i++) {
    const a = up[i]!;
    note(a);
    const j = down.findIndex((b) => b.bdf === a.bdf);
    if (j >= 0) {
      common = i;
      commonInDown = j;
      distB = j;
      break;
    }
    // Without a match the inner walk climbed the whole client chain.
    distB = down.length;
    distA++;
  }

  const path: P2pHop[] = [];
  if (common >= 0) {
    for (let i = 0; i < common; i++) path.push(hop(up[i]!, 'provider-side'));
    path.push(hop(up[common]!, 'common'));
    for (let j = commonInDown - 1; j >= 0; j--) {
      note(down[j]!);
      path.push(hop(down[j]!, 'client-side'));
    }
  } else {
    for (const fn of up) path.push(hop(fn, 'provider-side'));
    for (let j = down.length - 1; j >= 0; j--) path.push(hop(down[j]!, 'client-side'));
  }
  const distance = distA + distB;
  const commonUpstream = common >= 0 ? up[common]!.bdf : undefined;
  const unknownNote =
    acsUnknown.length === 0
      ? ''
      : `; ACS state unknown for ${acsUnknown.join(', ')} (capture lacked extended config space), taken as no ACS capability as the kernel does when it finds none, so a redirect there would go unseen`;

  if (common >= 0 && acsRedirects.length === 0) {
    const reason =
      provider === client
        ? `${provider} reaches its own BAR: bus address, distance 0${unknownNote}`
        : `${commonUpstream} is the common upstream device and no ACS redirect is set on the path: bus address, distance ${distance}${unknownNote}`;
    return {
      provider,
      client,
      mapType: 'bus-address',
      distance,
      commonUpstream,
      path,
      acsRedirects: [],
      acsUnknown,
      hostBridgeCheck: {
        ran: false,
        allowed: false,
        rule: 'not needed: traffic stays below the common upstream device',
      },
      reason,
    };
  }

  // Through the host bridge: a redirect below the common device, or no common device at all.
  const redirected = common >= 0;
  const redirectsForced = redirected ? acsRedirects : [];
  const why = redirected
    ? `ACS redirect is set between the client and provider (${provider}); to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${redirectsForced.join(';')}`
    : `${client} and ${provider} share no upstream bridge`;
  let check: BridgeVerdict;
  if (cpuSupportsP2pdma(topology.cpu)) {
    check = {
      allowed: true,
      rule: `CPU rule: AMD family 0x${topology.cpu.family!.toString(16)} is 0x17 (Zen) or newer, allowlist not consulted`,
    };
  } else {
    check = hostBridgeAllowlist(topology, provider, client);
  }
  const mapType: P2pMapType = check.allowed ? 'through-host-bridge' : 'not-supported';
  const verdict = check.allowed
    ? `through the host bridge (${check.rule})`
    : `${client} cannot be used for peer-to-peer DMA as the client and provider (${provider}) do not share an upstream bridge or whitelisted host bridge: ${check.rule}`;
  return {
    provider,
    client,
    mapType,
    distance,
    commonUpstream,
    path,
    acsRedirects: redirectsForced,
    acsUnknown: redirected ? acsUnknown : [],
    hostBridgeCheck: { ran: true, allowed: check.allowed, rule: check.rule },
    reason: `${why}; ${verdict}${redirected ? unknownNote : ''}`,
  };
}

export interface P2pDistanceMany {
  readonly decisions: readonly P2pDecision[];
  /** Sum of the distances, or -1 when there are no clients or any client is not supported. */
  readonly total: number;
  /** The worst map type over all clients ('not-supported' for an empty list). */
  readonly mapType: P2pMapType;
}

/**
 * pci_p2pdma_distance_many. Unlike the kernel's quiet mode, every client is decided (as its verbose
 * mode does), so a report can show each refusal.
 */
export function p2pDistanceMany(
  topology: PciTopology,
  provider: Bdf,
  clients: readonly Bdf[],
): P2pDistanceMany {
  if (clients.length === 0) return { decisions: [], total: -1, mapType: 'not-supported' };
  const decisions = clients.map((c) => calcP2pDecision(topology, provider, c));
  const refused = decisions.some((d) => d.mapType === 'not-supported');
  const thru = decisions.some((d) => d.mapType === 'through-host-bridge');
  return {
    decisions,
    total: refused ? -1 : decisions.reduce((sum, d) => sum + d.distance, 0),
    mapType: refused ? 'not-supported' : thru ? 'through-host-bridge' : 'bus-address',
  };
}

/**
 * pci_p2pdma_bus_addr_map: the address a peer puts on the bus for a BAR's CPU physical address,
 * i.e. CPU address minus the host bridge's bus offset. EINVAL when the address is in no memory BAR.
 */
export function busAddressOf(topology: PciTopology, cpuAddress: bigint): bigint {
  const hit = barContaining(topology, cpuAddress);
  if (hit === undefined) fail('EINVAL', `${formatHex(cpuAddress)} is not inside any PCI memory BAR`);
  return cpuAddress - hostBridgeOf(topology, hit.function.bdf).busOffset;
}

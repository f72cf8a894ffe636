/**
 * The P2PDMA decision for every pair of DMA-capable endpoints of a topology (`physr p2p --matrix`),
 * made as drivers/pci/p2pdma.c makes it (calc_map_type_and_dist, host_bridge_whitelist,
 * cpu_supports_p2pdma), with two additions a person debugging a real machine needs:
 *
 * - Verdicts that know what they do not know. Where the input lacks a fact the decision needs (an
 *   ACS control register, the CPU vendor/family, a host bridge's IDs), the cell is `depends`, names
 *   the missing fact and gives each outcome. It is never a confident refusal built on missing data.
 * - Remedies: the bridges whose ACS redirect sends a pair up to the root complex, with the
 *   `pci=disable_acs_redir=` value that clears them, or the host bridge IDs missing from the allowlist.
 *
 * The decision is symmetric (the same bridges are checked whichever side provides), so each unordered
 * pair is decided once. Chains and ACS answers are computed once per endpoint, and host-bridge
 * verdicts once per pair of host bridges, so a 1,000-function topology takes milliseconds.
 */
import { formatDisableAcsRedir } from './acs-boot.ts';
import { deviceLabels } from './device-labels.ts';
import { cpuSupportsP2pdma, P2P_HOST_BRIDGE_ALLOWLIST, type P2pMapType } from './p2pdma.ts';
import { type AcsAnswer, acsRedirectOf } from './pci-acs.ts';
import { compareBdf } from './pci-bdf.ts';
import { hostBridgeRepresentative, upstreamChain } from './pci-query.ts';
import type { AcsBits, Bdf, CpuInfo, HostBridge, PciFunction, PciTopology } from './pci-types.ts';

/** The endpoint classes the matrix covers (PCI base classes, include/linux/pci_ids.h). */
export type P2pEndpointClass = 'gpu' | 'nic' | 'storage' | 'accel';
export const P2P_ENDPOINT_CLASSES: readonly P2pEndpointClass[] = ['gpu', 'nic', 'storage', 'accel'];

/**
 * display/3D controllers (0x03), network controllers including InfiniBand (0x02), mass storage
 * including NVMe (0x01), processing accelerators (0x12). Wireless (0x0280) is a NIC too.
 */
export function p2pEndpointClass(fn: Pick<PciFunction, 'kind' | 'classCode'>): P2pEndpointClass | undefined {
  if (fn.kind !== 'endpoint' && fn.kind !== 'rc-integrated-endpoint') return undefined;
  if (fn.classCode === undefined) return undefined;
  switch (fn.classCode >>> 16) {
    case 0x03:
      return 'gpu';
    case 0x02:
      return 'nic';
    case 0x01:
      return 'storage';
    case 0x12:
      return 'accel';
    default:
      return undefined;
  }
}

/** What the CPU rule can say: certainly allows (AMD Zen+), certainly not, or unknown. */
export interface CpuFacts {
  readonly cpu: CpuInfo;
  /** How the CPU was learned: `capture`, `--cpu`, or the inference from host bridge vendors. */
  readonly source: string;
  readonly rule: 'allows' | 'does-not-apply' | 'unknown';
}

const PCI_VENDOR_INTEL = 0x8086;
const PCI_VENDOR_AMD = 0x1022;

/**
 * The CPU the decision uses: the topology's, else inferred from host bridge vendor IDs (all Intel or
 * all AMD root complexes make the CPU vendor certain); the inference is stated in `source`.
 */
export function cpuFacts(topology: PciTopology, given?: { cpu: CpuInfo; source: string }): CpuFacts {
  let cpu = given?.cpu ?? topology.cpu;
  let source = given?.source ?? 'capture';
  if (cpu.vendor === 'unknown') {
    const vendors = new Set(
      topology.hostBridges.map((hb) => hostBridgeRepresentative(topology, hb)?.vendorId ?? hb.vendorId),
    );
    if (vendors.size === 1 && vendors.has(PCI_VENDOR_INTEL)) {
      cpu = { vendor: 'intel', family: undefined };
      source = 'inferred: every host bridge is Intel (8086), so the CPU is Intel';
    } else if (vendors.size === 1 && vendors.has(PCI_VENDOR_AMD)) {
      cpu = { vendor: 'amd', family: undefined };
      source = 'inferred: every host bridge is AMD (1022), so the CPU is AMD (family unknown)';
    } else source = 'unknown (the input does not show it; give --cpu amd:0x19 or intel:6)';
  }
  let rule: CpuFacts['rule'];
  if (cpuSupportsP2pdma(cpu)) rule = 'allows';
  else if (cpu.vendor === 'unknown' || (cpu.vendor === 'amd' && cpu.family === undefined)) rule = 'unknown';
  else rule = 'does-not-apply';
  return { cpu, source, rule };
}

/** Parses `--cpu amd:0x19`, `intel:6`, `arm`: vendor, then the x86 family (hex with 0x, else decimal). */
export function parseCpuOption(text: string): CpuInfo | undefined {
  const m = /^(intel|amd|arm)(?::(0x[0-9a-f]+|\d+))?$/i.exec(text.trim());
  if (m === null) return undefined;
  const vendor = m[1]!.toLowerCase() as CpuInfo['vendor'];
  const family = m[2] === undefined ? undefined : Number.parseInt(m[2], m[2].startsWith('0x') ? 16 : 10);
  return { vendor, family: vendor === 'arm' ? undefined : family };
}

/** One host bridge's standing with the allowlist. */
export interface HostBridgeStanding {
  readonly id: string;
  /** The function that identifies it (pci_host_bridge_dev), when there is one. */
  readonly bdf: Bdf | undefined;
  readonly vendorId: number | undefined;
  readonly deviceId: number | undefined;
  readonly listed: 'yes' | 'same-host-bridge-only' | 'no' | 'unknown';
}

function standingOf(topology: PciTopology, hb: HostBridge): HostBridgeStanding {
  const rep = hostBridgeRepresentative(topology, hb);
  const base = { id: hb.id, bdf: rep?.bdf, vendorId: rep?.vendorId, deviceId: rep?.deviceId };
  // No identifying function: the kernel finds none either and refuses (a certain "no").
  if (rep === undefined) return { ...base, listed: 'no' };
  if (rep.vendorId === undefined || rep.deviceId === undefined) return { ...base, listed: 'unknown' };
  const entry = P2P_HOST_BRIDGE_ALLOWLIST.find(
    (e) => e.vendorId === rep.vendorId && (e.deviceId === 'any' || e.deviceId === rep.deviceId),
  );
  if (entry === undefined) return { ...base, listed: 'no' };
  return { ...base, listed: entry.requireSameHostBridge ? 'same-host-bridge-only' : 'yes' };
}

/** A condition on a missing fact and the map type the kernel would choose under it. */
export interface P2pOutcome {
  readonly if: string;
  readonly mapType: P2pMapType;
}

/** What would change a pair's answer. */
export type P2pRemedy =
  | {
      readonly kind: 'acs-redirect';
      /** Bridges with ACS P2P Request/Completion Redirect or Egress Control set, and which bits. */
      readonly bridges: readonly { readonly bdf: Bdf; readonly bits: readonly string[] }[];
      /** The kernel parameter that clears them (pci_dev_str_match syntax). */
      readonly param: string;
      /** What the pair becomes with it. */
      readonly becomes: P2pMapType;
    }
  | {
      readonly kind: 'allowlist';
      /** Host bridges whose IDs the allowlist lacks (or holds only for devices under one bridge). */
      readonly hostBridges: readonly HostBridgeStanding[];
    };

export interface P2pPair {
  readonly provider: Bdf;
  readonly client: Bdf;
  /** The kernel's answer on the facts as it would read them (unknown ACS as no capability, unknown CPU or IDs as not allowing). */
  readonly mapType: P2pMapType;
  readonly distance: number;
  /** `certain`, or `depends` when a missing fact could change the answer. */
  readonly certainty: 'certain' | 'depends';
  readonly commonUpstream: Bdf | undefined;
  /** Missing facts the answer depends on, in words. */
  readonly missing: readonly string[];
  /** Each outcome when `depends`. */
  readonly outcomes: readonly P2pOutcome[];
  readonly remedies: readonly P2pRemedy[];
}

export interface P2pMatrixOptions {
  /** Only these classes (default: all four). */
  readonly classes?: readonly P2pEndpointClass[];
  /** Only these functions (BDFs), in this order. */
  readonly devices?: readonly Bdf[];
  /** The CPU when the topology does not carry it (`--cpu`). */
  readonly cpu?: CpuInfo;
}

export interface P2pMatrixEndpoint {
  readonly bdf: Bdf;
  readonly label: string;
  readonly class: P2pEndpointClass | undefined;
}

export interface P2pMatrix {
  readonly endpoints: readonly P2pMatrixEndpoint[];
  /**
   * Per unordered pair (row-major upper triangle, see {@link matrixCell}): the map type code
   * (P2P_MAP_CODES index) plus {@link P2P_DEPENDS} when a missing fact could change it.
   */
  readonly codes: Uint8Array;
  readonly distances: Uint16Array;
  readonly cpu: CpuFacts;
  readonly hostBridges: readonly HostBridgeStanding[];
  /** The pair's full answer (missing facts, outcomes, remedies), built on demand. */
  readonly detail: (i: number, j: number) => P2pPair;
}

/** Map types by code in {@link P2pMatrix.codes}. */
export const P2P_MAP_CODES: readonly P2pMapType[] = ['bus-address', 'through-host-bridge', 'not-supported'];
export const P2P_DEPENDS = 4;
const CODE_OF: Record<P2pMapType, number> = {
  'bus-address': 0,
  'through-host-bridge': 1,
  'not-supported': 2,
};

function pairIndex(i: number, j: number, n: number): number {
  // Row-major upper triangle without the diagonal.
  return i * n - (i * (i + 1)) / 2 + (j - i - 1);
}

/** The cell of endpoints i and j (either order): map type, distance, certainty. */
export function matrixCell(
  matrix: P2pMatrix,
  i: number,
  j: number,
): { mapType: P2pMapType; distance: number; certainty: 'certain' | 'depends' } {
  const k = i < j ? pairIndex(i, j, matrix.endpoints.length) : pairIndex(j, i, matrix.endpoints.length);
  const code = matrix.codes[k]!;
  return {
    mapType: P2P_MAP_CODES[code & 3]!,
    distance: matrix.distances[k]!,
    certainty: (code & P2P_DEPENDS) !== 0 ? 'depends' : 'certain',
  };
}

/** The full answer for endpoints i and j (provider i, client j); undefined for i === j. */
export function matrixPair(matrix: P2pMatrix, i: number, j: number): P2pPair | undefined {
  return i === j ? undefined : matrix.detail(i, j);
}

const REDIRECT_BITS: ReadonlyArray<readonly [keyof AcsBits, string]> = [
  ['requestRedirect', 'ReqRedir'],
  ['completionRedirect', 'CmpltRedir'],
  ['egressControl', 'EgressCtrl'],
];

function redirectBits(fn: PciFunction): string[] {
  if (fn.acs.kind !== 'known') return [];
  const control = fn.acs.control;
  return REDIRECT_BITS.filter(([key]) => control[key]).map(([, name]) => name);
}

interface EndpointChain {
  readonly fns: readonly PciFunction[];
  readonly redirect: readonly AcsAnswer[];
}

interface HostStage {
  readonly mapType: P2pMapType;
  readonly certain: boolean;
  readonly outcomes: readonly P2pOutcome[];
  readonly missing: readonly string[];
  readonly remedy: P2pRemedy | undefined;
}

function hex4(v: number | undefined): string {
  return v === undefined ? '????' : v.toString(16).padStart(4, '0');
}

/** `0000:00:00.0 [8086:9a14]`: the host bridge as the allowlist sees it. */
export function hostBridgeStandingName(s: HostBridgeStanding): string {
  return `${s.bdf ?? s.id} [${hex4(s.vendorId)}:${hex4(s.deviceId)}]`;
}

/** Whether traffic through host bridges a and b would be allowed: the CPU rule, then the allowlist. */
function hostStage(cpu: CpuFacts, a: HostBridgeStanding, b: HostBridgeStanding): HostStage {
  if (cpu.rule === 'allows')
    return { mapType: 'through-host-bridge', certain: true, outcomes: [], missing: [], remedy: undefined };
  const same = a.id === b.id;
  const sides = same ? [a] : [a, b];
  const passes = (s: HostBridgeStanding): boolean | 'unknown' =>
    s.listed === 'unknown' ? 'unknown' : s.listed === 'yes' || (s.listed === 'same-host-bridge-only' && same);
  const answers = sides.map(passes);
  const refusing = sides.filter((_, i) => answers[i] === false);
  const unknownIds = sides.filter((_, i) => answers[i] === 'unknown');
  const allowlisted = refusing.length === 0 && unknownIds.length === 0;
  if (allowlisted)
    return { mapType: 'through-host-bridge', certain: true, outcomes: [], missing: [], remedy: undefined };
  const remedy: P2pRemedy | undefined =
    refusing.length > 0 ? { kind: 'allowlist', hostBridges: refusing } : undefined;
  const missing: string[] = [];
  const outcomes: P2pOutcome[] = [];
  if (cpu.rule === 'unknown') {
    missing.push(
      cpu.cpu.vendor === 'amd'
        ? 'the AMD CPU family (the CPU rule needs 0x17 or newer)'
        : 'the CPU vendor and family',
    );
    outcomes.push({ if: 'the CPU is AMD family 0x17 (Zen) or newer', mapType: 'through-host-bridge' });
  }
  if (unknownIds.length > 0 && refusing.length === 0) {
    missing.push(
      `the vendor/device IDs of host bridge ${unknownIds.map((s) => s.bdf ?? s.id).join(' and ')}`,
    );
    outcomes.push({ if: 'its IDs are on the P2PDMA allowlist', mapType: 'through-host-bridge' });
  }
  if (missing.length === 0) return { mapType: 'not-supported', certain: true, outcomes: [], missing, remedy };
  outcomes.push({ if: 'otherwise', mapType: 'not-supported' });
  return { mapType: 'not-supported', certain: false, outcomes, missing, remedy };
}

/** Builds the matrix. */
export function p2pMatrix(topology: PciTopology, options: P2pMatrixOptions = {}): P2pMatrix {
  const labels = new Map<Bdf, string>();
  for (const [label, bdf] of deviceLabels(topology)) labels.set(bdf, label);
  const classes = new Set(options.classes ?? P2P_ENDPOINT_CLASSES);
  let fns: PciFunction[];
  if (options.devices !== undefined) {
    fns = options.devices.map((bdf) => topology.functions.get(bdf)).filter((f) => f !== undefined);
  } else {
    fns = [...topology.functions.values()]
      .filter((f) => {
        const c = p2pEndpointClass(f);
        return c !== undefined && classes.has(c);
      })
      .sort((x, y) => compareBdf(x.bdf, y.bdf));
  }
  const endpoints = fns.map((f) => ({
    bdf: f.bdf,
    label: labels.get(f.bdf) ?? f.bdf,
    class: p2pEndpointClass(f),
  }));
  const cpu = cpuFacts(
    topology,
    options.cpu === undefined ? undefined : { cpu: options.cpu, source: '--cpu' },
  );
  const standings = new Map<string, HostBridgeStanding>();
  for (const hb of topology.hostBridges) standings.set(hb.id, standingOf(topology, hb));
  const redirectOf = new Map<Bdf, AcsAnswer>();
  const answer = (fn: PciFunction): AcsAnswer => {
    let a = redirectOf.get(fn.bdf);
    if (a === undefined) {
      a = acsRedirectOf(fn.acs);
      redirectOf.set(fn.bdf, a);
    }
    return a;
  };
  const chains: EndpointChain[] = fns.map((f) => {
    const chain = upstreamChain(topology, f.bdf);
    return { fns: chain, redirect: chain.map(answer) };
  });
  const stages = new Map<string, HostStage>();
  const stageFor = (a: PciFunction, b: PciFunction): HostStage => {
    const key =
      a.hostBridge < b.hostBridge ? `${a.hostBridge}|${b.hostBridge}` : `${b.hostBridge}|${a.hostBridge}`;
    let s = stages.get(key);
    if (s === undefined) {
      s = hostStage(cpu, standings.get(a.hostBridge)!, standings.get(b.hostBridge)!);
      stages.set(key, s);
    }
    return s;
  };

  // The cells, fast: functions as integers, chains root first, prefix counts of redirect and unknown
  // ACS along each chain, so a pair costs its common-prefix walk and a few subtractions.
  const n = fns.length;
  const ids = new Map<Bdf, number>();
  const hostIndex = new Map<string, number>();
  for (const hb of topology.hostBridges) hostIndex.set(hb.id, hostIndex.size);
  const rootFirst: Int32Array[] = [];
  const redirPrefix: Uint16Array[] = [];
  const unknownPrefix: Uint16Array[] = [];
  const hostOf = new Int32Array(n);
  for (let e = 0; e < n; e++) {
    const chain = chains[e]!;
    const len = chain.fns.length;
    const order = new Int32Array(len);
    const r = new Uint16Array(len + 1);
    const u = new Uint16Array(len + 1);
    for (let k = 0; k < len; k++) {
      const fn = chain.fns[len - 1 - k]!;
      let id = ids.get(fn.bdf);
      if (id === undefined) {
        id = ids.size;
        ids.set(fn.bdf, id);
      }
      order[k] = id;
      const a = chain.redirect[len - 1 - k];
      r[k + 1] = r[k]! + (a === true ? 1 : 0);
      u[k + 1] = u[k]! + (a === 'unknown' ? 1 : 0);
    }
    rootFirst.push(order);
    redirPrefix.push(r);
    unknownPrefix.push(u);
    hostOf[e] = hostIndex.get(fns[e]!.hostBridge) ?? 0;
  }
  const hosts = topology.hostBridges.length;
  const stageCodes = new Int16Array(hosts * hosts).fill(-1);
  const stageCode = (a: number, b: number): number => {
    let c = stageCodes[a * hosts + b]!;
    if (c < 0) {
      const s = stageFor(fns[findHost(a)]!, fns[findHost(b)]!);
      c = CODE_OF[s.mapType] | (s.certain ? 0 : P2P_DEPENDS);
      stageCodes[a * hosts + b] = c;
    }
    return c;
  };
  const firstOfHost = new Map<number, number>();
  for (let e = n - 1; e >= 0; e--) firstOfHost.set(hostOf[e]!, e);
  const findHost = (h: number): number => firstOfHost.get(h)!;

  const total = n > 1 ? (n * (n - 1)) / 2 : 0;
  const codes = new Uint8Array(total);
  const distances = new Uint16Array(total);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const a = rootFirst[i]!;
    const lenA = a.length;
    const ra = redirPrefix[i]!;
    const ua = unknownPrefix[i]!;
    for (let j = i + 1; j < n; j++, k++) {
      const b = rootFirst[j]!;
      const lenB = b.length;
      let c = 0;
      while (c < lenA && c < lenB && a[c] === b[c]) c++;
      if (c === 0) {
        codes[k] = stageCode(hostOf[i]!, hostOf[j]!);
        distances[k] = lenA + lenB;
        continue;
      }
      distances[k] = lenA - c + (lenB - c);
      // Provider side from itself up to and including the common device; client side below it.
      const rb = redirPrefix[j]!;
      const ub = unknownPrefix[j]!;
      const redirects = ra[lenA]! - ra[c - 1]! + (rb[lenB]! - rb[c]!);
      const unknown = ua[lenA]! - ua[c - 1]! + (ub[lenB]! - ub[c]!);
      if (redirects === 0)
        codes[k] = unknown === 0 ? CODE_OF['bus-address'] : CODE_OF['bus-address'] | P2P_DEPENDS;
      else codes[k] = stageCode(hostOf[i]!, hostOf[j]!);
    }
  }
  return {
    endpoints,
    codes,
    distances,
    cpu,
    hostBridges: topology.hostBridges.map((hb) => standings.get(hb.id)!),
    detail: (i, j) => decidePair(chains[i]!, chains[j]!, stageFor),
  };
}

/** calc_map_type_and_dist over precomputed chains, plus the unknowns and remedies. */
function decidePair(
  up: EndpointChain,
  down: EndpointChain,
  stageFor: (a: PciFunction, b: PciFunction) => HostStage,
): P2pPair {
  const provider = up.fns[0]!;
  const client = down.fns[0]!;
  let common = -1;
  let commonInDown = -1;
  for (let i = 0; i < up.fns.length && common < 0; i++) {
    const bdf = up.fns[i]!.bdf;
    for (let j = 0; j < down.fns.length; j++) {
      if (down.fns[j]!.bdf === bdf) {
        common = i;
        commonInDown = j;
        break;
      }
    }
  }
  const base = { provider: provider.bdf, client: client.bdf };
  if (common < 0) {
    // No common upstream device: through the host bridge or nothing; ACS plays no part.
    const stage = stageFor(provider, client);
    return {
      ...base,
      mapType: stage.mapType,
      distance: up.fns.length + down.fns.length,
      certainty: stage.certain ? 'certain' : 'depends',
      commonUpstream: undefined,
      missing: stage.missing,
      outcomes: stage.outcomes,
      remedies: stage.remedy === undefined ? [] : [stage.remedy],
    };
  }
  const distance = common + commonInDown;
  const redirects: PciFunction[] = [];
  const unknown: PciFunction[] = [];
  const note = (fn: PciFunction, a: AcsAnswer): void => {
    if (a === true) redirects.push(fn);
    else if (a === 'unknown') unknown.push(fn);
  };
  for (let i = 0; i <= common; i++) note(up.fns[i]!, up.redirect[i]!);
  for (let j = 0; j < commonInDown; j++) note(down.fns[j]!, down.redirect[j]!);
  const commonUpstream = up.fns[common]!.bdf;
  if (redirects.length === 0 && unknown.length === 0) {
    return {
      ...base,
      mapType: 'bus-address',
      distance,
      certainty: 'certain',
      commonUpstream,
      missing: [],
      outcomes: [],
      remedies: [],
    };
  }
  const stage = stageFor(provider, client);
  if (redirects.length === 0) {
    // Only unknown ACS on the path: the kernel would read no capability there, so bus address; a
    // redirect there would send it up instead.
    const where = unknown.map((f) => f.bdf).join(', ');
    return {
      ...base,
      mapType: 'bus-address',
      distance,
      certainty: 'depends',
      commonUpstream,
      missing: [
        `the ACS control of ${where} (${unknown[0]!.acs.kind === 'unknown' ? unknown[0]!.acs.why : ''})`,
      ],
      outcomes: [
        { if: `ACS redirect is off at ${where}`, mapType: 'bus-address' },
        ...(stage.certain
          ? [{ if: `ACS redirect is on at ${where}`, mapType: stage.mapType }]
          : stage.outcomes.map((o) => ({
              if: `ACS redirect is on at ${where} and ${o.if}`,
              mapType: o.mapType,
            }))),
      ],
      remedies: [],
    };
  }
  const acsRemedy: P2pRemedy = {
    kind: 'acs-redirect',
    bridges: redirects.map((f) => ({ bdf: f.bdf, bits: redirectBits(f) })),
    param: formatDisableAcsRedir(redirects.map((f) => f.bdf)),
    becomes: 'bus-address',
  };
  const missing = [...stage.missing];
  if (unknown.length > 0)
    missing.push(
      `the ACS control of ${unknown.map((f) => f.bdf).join(', ')} (a redirect there would also need clearing)`,
    );
  return {
    ...base,
    mapType: stage.mapType,
    distance,
    certainty: stage.certain ? 'certain' : 'depends',
    commonUpstream,
    missing,
    outcomes: stage.outcomes,
    remedies: stage.remedy === undefined ? [acsRemedy] : [acsRemedy, stage.remedy],
  };
}

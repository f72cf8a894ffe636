/**
 * Text and JSON renderings of a PCI topology (the `physr topo` tree) and of P2PDMA decisions
 * (`physr p2p`). Unknowns are printed as such, never filled in.
 */
import { formatHex, formatSize } from '../core/index.ts';
import type { ImportNote } from './capture-import.ts';
import type { IommuGroups } from './iommu-groups.ts';
import type { P2pDecision } from './p2pdma.ts';
import { acsBitsToRegister } from './pci-acs.ts';
import type { AcsBits, AcsState, Bdf, PciBar, PciFunction, PciTopology } from './pci-types.ts';

const ACS_NAMES: ReadonlyArray<readonly [keyof AcsBits, string]> = [
  ['sourceValidation', 'SrcValid'],
  ['translationBlocking', 'TransBlk'],
  ['requestRedirect', 'ReqRedir'],
  ['completionRedirect', 'CmpltRedir'],
  ['upstreamForwarding', 'UpstreamFwd'],
  ['egressControl', 'EgressCtrl'],
  ['directTranslatedP2p', 'DirectTrans'],
];

/** lspci's style: `SrcValid+ TransBlk- ...`. */
export function formatAcsBits(bits: AcsBits): string {
  return ACS_NAMES.map(([key, name]) => `${name}${bits[key] ? '+' : '-'}`).join(' ');
}

export function formatAcs(acs: AcsState): string {
  switch (acs.kind) {
    case 'absent':
      return 'ACS: none';
    case 'unknown':
      return `ACS: unknown (${acs.why})`;
    case 'known':
      return `ACSCap: ${formatAcsBits(acs.capability)}; ACSCtl: ${formatAcsBits(acs.control)}`;
  }
}

const hex4 = (v: number | undefined): string => (v === undefined ? '????' : v.toString(16).padStart(4, '0'));

export function formatBar(bar: PciBar): string {
  const kind = bar.io ? 'I/O' : `${bar.is64 ? '64-bit' : '32-bit'} ${bar.prefetchable ? 'pref' : 'non-pref'}`;
  const size = bar.sizeUnknown === true ? 'size unknown' : `size=${formatSize(bar.size)}`;
  return `BAR${bar.index} ${formatHex(bar.cpuAddress)} [${size}] ${kind}`;
}

function functionLine(f: PciFunction): string {
  const cls =
    f.classCode === undefined ? 'class ??????' : `class ${f.classCode.toString(16).padStart(6, '0')}`;
  const parts = [`${f.bdf} ${f.kind} [${hex4(f.vendorId)}:${hex4(f.deviceId)}] ${cls}`];
  if (f.name !== undefined) parts.push(`"${f.name}"`);
  if (f.secondaryBus !== undefined) {
    parts.push(
      `buses [${f.secondaryBus.toString(16).padStart(2, '0')}-${(f.subordinateBus ?? f.secondaryBus).toString(16).padStart(2, '0')}]`,
    );
  }
  if (f.multifunction) parts.push('multifunction');
  return parts.join(' ');
}

export interface TopologyTextOptions {
  readonly groups?: IommuGroups;
  readonly notes?: readonly ImportNote[];
}

/** The tree: host bridges, then each function under its parent, with BARs, ACS and IOMMU group. */
export function formatTopology(topology: PciTopology, options: TopologyTextOptions = {}): string {
  const out: string[] = [];
  const cpu = topology.cpu;
  out.push(`CPU: ${cpu.vendor}${cpu.family === undefined ? '' : ` family 0x${cpu.family.toString(16)}`}`);
  const children = new Map<Bdf | string, PciFunction[]>();
  for (const f of topology.functions.values()) {
    const key = f.parent ?? f.hostBridge;
    const list = children.get(key) ?? [];
    list.push(f);
    children.set(key, list);
  }
  const walk = (key: string, depth: number): void => {
    for (const f of children.get(key) ?? []) {
      const pad = '  '.repeat(depth);
      out.push(`${pad}${functionLine(f)}`);
      for (const bar of f.bars) out.push(`${pad}    ${formatBar(bar)}`);
      if (f.kind !== 'endpoint' || f.acs.kind !== 'absent') out.push(`${pad}    ${formatAcs(f.acs)}`);
      const derived = options.groups?.groupOf.get(f.bdf);
      const reported = f.reportedIommuGroup;
      const group =
        reported === undefined && derived === undefined
          ? 'unknown'
          : [
              reported === undefined ? undefined : `${reported} (reported)`,
              derived === undefined ? undefined : `${derived} (derived)`,
            ]
              .filter((s) => s !== undefined)
              .join(', ');
      out.push(`${pad}    IOMMU group: ${group}`);
      walk(f.bdf, depth + 1);
    }
  };
  for (const host of topology.hostBridges) {
    const ids =
      host.vendorId === undefined ? 'device unknown' : `[${hex4(host.vendorId)}:${hex4(host.deviceId)}]`;
    const bus = `${host.segment.toString(16).padStart(4, '0')}:[${host.busStart.toString(16).padStart(2, '0')}-${host.busEnd.toString(16).padStart(2, '0')}]`;
    const numa = host.numaNode === undefined ? 'NUMA unknown' : `NUMA ${host.numaNode}`;
    out.push(`${host.id} host bridge ${ids} buses ${bus} ${numa} bus offset ${formatHex(host.busOffset)}`);
    walk(host.id, 1);
  }
  if (topology.functions.size === 0) out.push('(no PCI functions)');
  return `${out.join('\n')}\n`;
}

/** One line saying what an import found: counts and the unknowns grouped by cause. */
export function summarizeImport(topology: PciTopology, source: string, notes: readonly ImportNote[]): string {
  const n = topology.functions.size;
  const h = topology.hostBridges.length;
  let line = `read ${n} PCI function${n === 1 ? '' : 's'} under ${h} host bridge${h === 1 ? '' : 's'} from ${source}`;
  const acs = notes.filter((x) => x.what === 'acs');
  if (acs.length > 0) {
    const why = new Map<string, number>();
    for (const note of acs) why.set(note.why, (why.get(note.why) ?? 0) + 1);
    const causes = [...why].map(([w, c]) => (why.size === 1 ? w : `${c}: ${w}`)).join('; ');
    line += `; ACS unknown for ${acs.length} function${acs.length === 1 ? '' : 's'}: ${causes}`;
  }
  const other = notes.filter((x) => x.what !== 'acs' && x.what !== 'bus-offset');
  if (other.length > 0) line += `; ${other.length} other unknown${other.length === 1 ? '' : 's'} (see notes)`;
  return line;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function acsJson(acs: AcsState): Json {
  if (acs.kind === 'known') {
    return {
      kind: 'known',
      capability: formatHex(BigInt(acsBitsToRegister(acs.capability))),
      control: formatHex(BigInt(acsBitsToRegister(acs.control))),
      capabilityFlags: formatAcsBits(acs.capability),
      controlFlags: formatAcsBits(acs.control),
    };
  }
  return acs.kind === 'unknown' ? { kind: 'unknown', why: acs.why } : { kind: 'absent' };
}

/** JSON-safe form: addresses and sizes as hex strings (no precision loss), unknowns as null. */
export function topologyToJson(topology: PciTopology, options: TopologyTextOptions = {}): Json {
  return {
    cpu: { vendor: topology.cpu.vendor, family: topology.cpu.family ?? null },
    hostBridges: topology.hostBridges.map((h) => ({
      id: h.id,
      segment: h.segment,
      busStart: h.busStart,
      busEnd: h.busEnd,
      vendorId: h.vendorId ?? null,
      deviceId: h.deviceId ?? null,
      busOffset: formatHex(h.busOffset),
      numaNode: h.numaNode ?? null,
    })),
    functions: [...topology.functions.values()].map((f) => ({
      bdf: f.bdf,
      kind: f.kind,
      vendorId: f.vendorId ?? null,
      deviceId: f.deviceId ?? null,
      classCode: f.classCode ?? null,
      name: f.name ?? null,
      parent: f.parent ?? null,
      hostBridge: f.hostBridge,
      bars: f.bars.map((b) => ({
        index: b.index,
        cpuAddress: formatHex(b.cpuAddress),
        size: formatHex(b.size),
        prefetchable: b.prefetchable,
        is64: b.is64,
        io: b.io,
        ...(b.sizeUnknown === true ? { sizeUnknown: true } : {}),
      })),
      acs: acsJson(f.acs),
      multifunction: f.multifunction ?? null,
      secondaryBus: f.secondaryBus ?? null,
      subordinateBus: f.subordinateBus ?? null,
      numaNode: f.numaNode ?? null,
      reportedIommuGroup: f.reportedIommuGroup ?? null,
      derivedIommuGroup: options.groups?.groupOf.get(f.bdf) ?? null,
    })),
    notes: (options.notes ?? []).map((n) => ({ bdf: n.bdf ?? null, what: n.what, why: n.why })),
  };
}

/** A P2P decision, kernel-style: map type, distance, the path hop by hop with ACS marks, the reason. */
export function formatP2pDecision(d: P2pDecision): string {
  const out = [`${d.provider} -> ${d.client}: ${d.mapType}, distance ${d.distance}`];
  out.push(`  common upstream: ${d.commonUpstream ?? 'none'}`);
  for (const hop of d.path) {
    const mark = hop.acsRedirect === 'unknown' ? ' [ACS unknown]' : hop.acsRedirect ? ' [ACS redirect]' : '';
    out.push(`  ${hop.role.padEnd(13)} ${hop.bdf}${mark}`);
  }
  if (d.acsRedirects.length > 0) out.push(`  ACS redirect on: ${d.acsRedirects.join(' ')}`);
  if (d.acsUnknown.length > 0) out.push(`  ACS unknown on: ${d.acsUnknown.join(' ')}`);
  if (d.hostBridgeCheck.ran) {
    out.push(
      `  host bridge check: ${d.hostBridgeCheck.allowed ? 'allowed' : 'refused'} (${d.hostBridgeCheck.rule})`,
    );
  }
  out.push(`  reason: ${d.reason}`);
  return `${out.join('\n')}\n`;
}

export function p2pDecisionToJson(d: P2pDecision): Json {
  return {
    provider: d.provider,
    client: d.client,
    mapType: d.mapType,
    distance: d.distance,
    commonUpstream: d.commonUpstream ?? null,
    path: d.path.map((h) => ({ bdf: h.bdf, role: h.role, acsRedirect: h.acsRedirect })),
    acsRedirects: [...d.acsRedirects],
    acsUnknown: [...d.acsUnknown],
    hostBridgeCheck: { ...d.hostBridgeCheck },
    reason: d.reason,
  };
}

/**
 * `physr p2p --matrix` as text (a grid nvidia-smi topo -m readers know, a legend, then one line per
 * pair that is refused, goes through a host bridge or depends on a missing fact, with the kernel's
 * reason and the remedy) and as JSON.
 */

import {
  type HostBridgeStanding,
  hostBridgeStandingName,
  matrixCell,
  matrixPair,
  type P2pMatrix,
  type P2pPair,
  type P2pRemedy,
} from './p2p-matrix.ts';
import { calcP2pDecision, type P2pMapType } from './p2pdma.ts';
import type { PciTopology } from './pci-types.ts';

const CELL: Record<P2pMapType, string> = {
  'bus-address': 'BUS',
  'through-host-bridge': 'HB',
  'not-supported': 'NO',
};

/** The cell text: map type and distance, `?` marking an answer that depends on a missing fact. */
export function p2pCellText(pair: Pick<P2pPair, 'mapType' | 'certainty' | 'distance'>): string {
  return `${CELL[pair.mapType]}${pair.certainty === 'depends' ? '?' : ''}${pair.distance}`;
}

export const P2P_MATRIX_LEGEND = [
  'Legend (drivers/pci/p2pdma.c map type, then the distance):',
  '  X     = self',
  "  BUSn  = P2PDMA_MAP_BUS_ADDR: a switch routes it; the client is given the BAR's PCI bus address, no IOMMU mapping",
  "  HBn   = P2PDMA_MAP_THRU_HOST_BRIDGE: up through the root complex; the client's IOMMU maps the BAR like MMIO",
  '  NOn   = P2PDMA_MAP_NOT_SUPPORTED: the kernel refuses the pair (pci_p2pdma_distance < 0)',
  "  ?     = after the type: the answer depends on a fact the input lacks (the type shown is the kernel's",
  "          reading with the fact absent); the pair's lines below name the fact and every outcome",
  '  n     = hops from each device up to the common upstream device (without one: up to each root)',
];

function describeRemedy(r: P2pRemedy): string {
  if (r.kind === 'acs-redirect') {
    const bridges = r.bridges.map((b) => `${b.bdf} (${b.bits.join(' ')})`).join(', ');
    return `ACS redirect set on ${bridges}; boot with ${r.param} to let the switch route it (${r.becomes})`;
  }
  const names = r.hostBridges.map(hostBridgeStandingName).join(', ');
  const sameOnly = r.hostBridges.filter((h) => h.listed === 'same-host-bridge-only');
  return sameOnly.length === r.hostBridges.length
    ? `host bridge ${names} is on the P2PDMA allowlist only for devices under that one host bridge; put both under it`
    : `host bridge ${names} is not on the P2PDMA allowlist (p2pdma.c pci_p2pdma_whitelist); no kernel parameter adds one, it takes a kernel change`;
}

/** The lines for one pair that needs them (refused, through a host bridge, or depending on a fact). */
export function p2pPairLines(topology: PciTopology, matrix: P2pMatrix, i: number, j: number): string[] {
  const pair = matrixPair(matrix, i, j)!;
  const a = matrix.endpoints[i]!;
  const b = matrix.endpoints[j]!;
  const head = `${a.label} <-> ${b.label} (${a.bdf} <-> ${b.bdf}): ${pair.mapType}, distance ${pair.distance}${pair.certainty === 'depends' ? ' on the facts the input shows' : ''}`;
  const out = [head, `  reason: ${calcP2pDecision(topology, pair.provider, pair.client).reason}`];
  if (pair.certainty === 'depends') {
    out.push(`  depends on: ${pair.missing.join('; ')}`);
    for (const o of pair.outcomes) out.push(`    if ${o.if}: ${o.mapType}`);
  }
  for (const r of pair.remedies) out.push(`  remedy: ${describeRemedy(r)}`);
  return out;
}

function needsLines(pair: Pick<P2pPair, 'mapType' | 'certainty'>): boolean {
  return pair.mapType !== 'bus-address' || pair.certainty === 'depends';
}

/** The whole text: CPU facts, grid, legend, device key, and the per-pair lines. */
export function formatP2pMatrix(topology: PciTopology, matrix: P2pMatrix, source: string): string {
  const out: string[] = [`topology: ${source}`];
  const cpu = matrix.cpu;
  out.push(
    `CPU: ${cpu.cpu.vendor}${cpu.cpu.family === undefined ? '' : ` family 0x${cpu.cpu.family.toString(16)}`} (${cpu.source}); AMD Zen CPU rule: ${cpu.rule}`,
  );
  const n = matrix.endpoints.length;
  if (n < 2) {
    out.push(`${n} DMA-capable endpoint${n === 1 ? '' : 's'} (GPU, NIC, storage, accelerator): no pairs`);
    return `${out.join('\n')}\n`;
  }
  const width = Math.max(6, ...matrix.endpoints.map((e) => e.label.length + 1));
  const header = ''.padEnd(width) + matrix.endpoints.map((e) => e.label.padStart(width)).join('');
  out.push('', header);
  for (let i = 0; i < n; i++) {
    let row = matrix.endpoints[i]!.label.padEnd(width);
    for (let j = 0; j < n; j++)
      row += (i === j ? 'X' : p2pCellText(matrixPair(matrix, i, j)!)).padStart(width);
    out.push(row);
  }
  out.push('', ...P2P_MATRIX_LEGEND, '', 'Devices:');
  for (const e of matrix.endpoints) {
    const fn = topology.functions.get(e.bdf)!;
    const ids = `${fn.vendorId?.toString(16).padStart(4, '0') ?? '????'}:${fn.deviceId?.toString(16).padStart(4, '0') ?? '????'}`;
    out.push(
      `  ${e.label.padEnd(width)} ${e.bdf} [${ids}] ${e.class ?? 'other'}${fn.name === undefined ? '' : ` "${fn.name}"`}`,
    );
  }
  const lines: string[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++)
      if (needsLines(matrixCell(matrix, i, j))) lines.push(...p2pPairLines(topology, matrix, i, j));
  out.push('');
  if (lines.length === 0) out.push('Every pair maps by bus address through a switch.');
  else out.push('Pairs that are refused, go through a host bridge, or depend on a missing fact:', ...lines);
  return `${out.join('\n')}\n`;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function standingJson(h: HostBridgeStanding): Json {
  return {
    id: h.id,
    bdf: h.bdf ?? null,
    vendorId: h.vendorId ?? null,
    deviceId: h.deviceId ?? null,
    listed: h.listed,
  };
}

function remedyJson(r: P2pRemedy): Json {
  if (r.kind === 'acs-redirect')
    return {
      kind: r.kind,
      bridges: r.bridges.map((b) => ({ bdf: b.bdf, bits: [...b.bits] })),
      param: r.param,
      becomes: r.becomes,
    };
  return {
    kind: r.kind,
    hostBridges: r.hostBridges.map(standingJson),
  };
}

/** The same result as JSON: endpoints, every unordered pair once, CPU facts and host bridges. */
export function p2pMatrixToJson(topology: PciTopology, matrix: P2pMatrix, source: string): Json {
  const n = matrix.endpoints.length;
  const pairs: Json[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const p = matrixPair(matrix, i, j)!;
      pairs.push({
        a: matrix.endpoints[i]!.label,
        b: matrix.endpoints[j]!.label,
        provider: p.provider,
        client: p.client,
        mapType: p.mapType,
        distance: p.distance,
        cell: p2pCellText(p),
        certainty: p.certainty,
        commonUpstream: p.commonUpstream ?? null,
        reason: needsLines(p) ? calcP2pDecision(topology, p.provider, p.client).reason : null,
        missing: [...p.missing],
        outcomes: p.outcomes.map((o) => ({ if: o.if, mapType: o.mapType })),
        remedies: p.remedies.map(remedyJson),
      });
    }
  return {
    source,
    cpu: {
      vendor: matrix.cpu.cpu.vendor,
      family: matrix.cpu.cpu.family ?? null,
      source: matrix.cpu.source,
      rule: matrix.cpu.rule,
    },
    hostBridges: matrix.hostBridges.map(standingJson),
    endpoints: matrix.endpoints.map((e) => ({ label: e.label, bdf: e.bdf, class: e.class ?? null })),
    pairs,
  };
}

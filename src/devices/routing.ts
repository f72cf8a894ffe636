/**
 * Where a device's DMA goes. A PCI function issues a memory read or write at a DMA address; the
 * fabric routes it the way PCIe does:
 *
 *  1. Below a switch, a request whose address falls in the memory window of a peer under a common
 *     upstream device is routed straight down to that peer's BAR, unless a port on the way has an ACS
 *     redirect bit set (RR/CR/EC: the rule drivers/pci/p2pdma.c applies in calc_map_type_and_dist).
 *     No IOMMU sees it: the address is a PCI bus address (CPU address = bus + host bridge offset).
 *  2. Everything else goes up to the root complex. There the device's IOMMU domain translates it
 *     (Iommu.translate: IOTLB first, so a stale entry after a lazy unmap still reaches the old page;
 *     a fault is logged and the access fails), or, without an IOMMU or with an identity domain, the
 *     bus address becomes a CPU address through the host bridge offset.
 *  3. The physical address lands in RAM/pmem (the byte store), in a peer's BAR (host-bridge P2P,
 *     allowed only when the p2pdma host-bridge rules pass, else an Unsupported Request), or nowhere.
 *
 * A PCIe request never crosses a 4 KiB boundary, and an IOMMU translates per page, so an access is
 * cut into chunks at the IOMMU granule (4 KiB without one) and each chunk is routed on its own.
 * Routing stops at the first chunk that fails: earlier posted writes have already landed.
 */
import { COUNTER, type Errno, formatHex, type Metrics, PhysrError } from '../core/index.ts';
import type { Access, Iommu } from '../iommu/index.ts';
import {
  type Bdf,
  BYTE_STORE_MAX_TRANSFER,
  type ByteStore,
  barContaining,
  calcP2pDecision,
  cpuSupportsP2pdma,
  type HostBridge,
  hostBridgeAllowlist,
  hostBridgeOf,
  type MemoryMap,
  type P2pDecision,
  type PciFunction,
  type PciTopology,
  requireFunction,
  upstreamChain,
} from '../platform/index.ts';

/** The IOMMU in front of a device, and the id the IOMMU knows the device by. */
export interface DeviceIommu {
  readonly iommu: Iommu;
  readonly deviceId: string;
}

/** What routing needs of the machine: topology, memory, bytes, counters and each device's IOMMU. */
export interface DmaFabric {
  readonly topology: PciTopology;
  readonly memoryMap: MemoryMap;
  readonly bytes: ByteStore;
  readonly metrics: Metrics;
  /** The device's IOMMU, or undefined when nothing translates its DMA. */
  iommuOf(bdf: Bdf): DeviceIommu | undefined;
  /**
   * CPU address minus DMA address for the device's untranslated requests at the root complex (its
   * dma_range_map offset). Default: the host bridge's bus offset.
   */
  inboundOffset?(bdf: Bdf): bigint;
}

/** Counters this piece adds to the catalogue. */
export const DEVICE_COUNTER = {
  switchP2pBytes: 'devices.p2p_switch_bytes',
  hostBridgeP2pBytes: 'devices.p2p_host_bridge_bytes',
  ramBytes: 'devices.ram_bytes',
  failedAccesses: 'devices.failed_accesses',
  unsupportedRequests: 'devices.unsupported_requests',
  accesses: 'devices.accesses',
  staleAccessBytes: 'devices.stale_access_bytes',
} as const;

export type HopKind = 'device' | 'port' | 'root-complex' | 'iommu' | 'memory' | 'peer';

export interface AccessHop {
  readonly kind: HopKind;
  /** BDF of a PCI function, host bridge id, IOMMU name or memory region name. */
  readonly name: string;
  /** Why the access turned here (e.g. "ACS redirect: sent upstream"). */
  readonly note?: string;
}

export type AccessPath = 'switch' | 'iommu' | 'direct';

export type AccessTarget =
  | { readonly kind: 'ram'; readonly region: 'ram' | 'pmem' | 'swiotlb'; readonly name: string }
  | {
      readonly kind: 'peer-bar';
      readonly bdf: Bdf;
      readonly barIndex: number;
      /** Offset into the BAR of the segment's first byte. */
      readonly offset: bigint;
      readonly via: 'switch' | 'host-bridge';
    }
  | { readonly kind: 'fault'; readonly errno: Errno; readonly reason: string };

/** A run of bytes that took one route and landed contiguously. */
export interface AccessSegment {
  readonly dmaAddress: bigint;
  readonly length: number;
  readonly path: AccessPath;
  /** Where the bytes land; undefined for a fault before translation completed. */
  readonly physAddress: bigint | undefined;
  readonly target: AccessTarget;
  readonly hops: readonly AccessHop[];
  /** IOTLB stale hits counted while translating this segment (lazy-unmap leftovers). */
  readonly staleHits: number;
}

export interface DmaAccessRecord {
  readonly requester: Bdf;
  readonly access: Access;
  readonly dmaAddress: bigint;
  readonly length: number;
  /** In address order; a fault, if any, is the last segment. */
  readonly segments: readonly AccessSegment[];
  /** Bytes that reached a target (all of them unless it faulted). */
  readonly bytesMoved: number;
  readonly fault: { readonly errno: Errno; readonly reason: string } | undefined;
}

/** The memory-map name of the swiotlb pool (createPlatformModel registers it as `reserved`). */
const SWIOTLB_REGION_NAME = 'swiotlb';

/** The PCIe rule that a request never crosses a 4 KiB boundary, and the page size without an IOMMU. */
const TLP_BOUNDARY = 4096n;

interface ChunkRoute {
  readonly path: AccessPath;
  readonly phys: bigint | undefined;
  readonly target: AccessTarget;
  readonly hops: readonly AccessHop[];
  readonly stale: number;
  /** Bytes of the chunk this route is good for (a BAR may end inside it). */
  readonly limit: bigint;
}

function portHops(chain: readonly { bdf: Bdf }[], redirects: ReadonlySet<Bdf>): AccessHop[] {
  return chain.map((fn) =>
    redirects.has(fn.bdf)
      ? { kind: 'port', name: fn.bdf, note: 'ACS redirect set: peer requests go upstream' }
      : { kind: 'port', name: fn.bdf },
  );
}

/** The hops from the requester up to the common device and down to the provider (p2pdma path reversed). */
function switchHops(requester: Bdf, decision: P2pDecision): AccessHop[] {
  const hops: AccessHop[] = [{ kind: 'device', name: requester }];
  const reversed = [...decision.path].reverse();
  for (const hop of reversed) {
    if (hop.bdf === requester || hop.bdf === decision.provider) continue;
    hops.push({
      kind: 'port',
      name: hop.bdf,
      ...(hop.role === 'common' ? { note: 'common upstream device: routed to the peer by address' } : {}),
    });
  }
  return hops;
}

function fault(errno: Errno, reason: string): AccessTarget {
  return { kind: 'fault', errno, reason };
}

/**
 * Whether the root complex forwards a request to a peer's BAR: the p2pdma host-bridge rules
 * (cpu_supports_p2pdma, host_bridge_whitelist in drivers/pci/p2pdma.c) between these two devices.
 */
function rootComplexForwards(topology: PciTopology, decision: P2pDecision): { ok: boolean; why: string } {
  const { provider, client } = decision;
  if (provider === client) return { ok: true, why: `${client} reaches its own BAR` };
  if (decision.mapType === 'through-host-bridge') return { ok: true, why: decision.hostBridgeCheck.rule };
  if (decision.mapType === 'not-supported') return { ok: false, why: decision.reason };
  // A pair the switch could serve, but this request came up to the root complex (e.g. an IOMMU
  // mapping of the BAR): the host bridge must still forward it back down.
  if (cpuSupportsP2pdma(topology.cpu))
    return { ok: true, why: 'CPU rule: AMD Zen or newer forwards peer traffic' };
  const verdict = hostBridgeAllowlist(topology, provider, client);
  return { ok: verdict.allowed, why: verdict.rule };
}

/** Where a physical address from the root complex lands. */
function landing(
  fabric: DmaFabric,
  req: Requester,
  phys: bigint,
  remaining: bigint,
): { target: AccessTarget; hops: AccessHop[]; limit: bigint } {
  const requester = req.bdf;
  const bar = barContaining(fabric.topology, phys);
  if (bar !== undefined) {
    const peer = bar.function.bdf;
    const limit = bar.bar.size - bar.offset;
    const verdict = rootComplexForwards(fabric.topology, decisionFor(fabric, req, peer));
    const down = upstreamChain(fabric.topology, peer).reverse();
    if (!verdict.ok) {
      return {
        target: fault(
          'EREMOTEIO',
          `Unsupported Request: ${requester} -> BAR${bar.bar.index} of ${peer} at ${formatHex(phys)} is peer traffic the host bridge does not forward (${verdict.why})`,
        ),
        hops: [{ kind: 'peer', name: peer, note: 'Unsupported Request' }],
        limit,
      };
    }
    const hops: AccessHop[] = down.slice(0, -1).map((fn) => ({ kind: 'port', name: fn.bdf }));
    hops.push({
      kind: 'peer',
      name: peer,
      note: `BAR${bar.bar.index} through the host bridge (${verdict.why})`,
    });
    return {
      target: {
        kind: 'peer-bar',
        bdf: peer,
        barIndex: bar.bar.index,
        offset: bar.offset,
        via: 'host-bridge',
      },
      hops,
      limit,
    };
  }
  const region = fabric.memoryMap.lookup(phys);
  // The swiotlb pool is RAM the platform carved out as `reserved` (see platform-model.ts): bounced
  // DMA lands there.
  const swiotlb = region?.kind === 'reserved' && region.name === SWIOTLB_REGION_NAME;
  if (region !== undefined && (region.kind === 'ram' || region.kind === 'pmem' || swiotlb)) {
    return {
      target: {
        kind: 'ram',
        region: swiotlb ? 'swiotlb' : region.kind === 'pmem' ? 'pmem' : 'ram',
        name: region.name,
      },
      hops: [{ kind: 'memory', name: region.name }],
      limit: region.last - phys + 1n,
    };
  }
  const what = region === undefined ? 'no memory' : `${region.kind} region "${region.name}"`;
  return {
    target: fault(
      'EFAULT',
      `${requester}: physical address ${formatHex(phys)} is ${what}, not RAM nor a BAR`,
    ),
    hops: [{ kind: 'memory', name: region?.name ?? 'nothing', note: 'no target' }],
    limit: remaining,
  };
}

/** Routes one chunk (it never crosses the granule boundary). */
/** What stays the same for every chunk of one access: looked up once. */
interface Requester {
  readonly bdf: Bdf;
  readonly fn: PciFunction;
  readonly hb: HostBridge;
  readonly chain: readonly PciFunction[];
  readonly unit: DeviceIommu | undefined;
  /** Untranslated: no IOMMU, or an identity domain. */
  readonly direct: boolean;
  readonly inboundOffset: bigint;
  readonly granule: bigint;
  /** P2P decisions by provider, computed at most once per access. */
  readonly decisions: Map<Bdf, P2pDecision>;
}

function requesterOf(fabric: DmaFabric, bdf: Bdf): Requester {
  const { topology } = fabric;
  const fn = requireFunction(topology, bdf);
  const hb = hostBridgeOf(topology, bdf);
  const unit = fabric.iommuOf(bdf);
  const domain = unit?.iommu.domainOf(unit.deviceId);
  const pt = domain?.pageTable;
  return {
    bdf,
    fn,
    hb,
    chain: upstreamChain(topology, bdf),
    unit,
    direct: unit === undefined || domain?.type === 'identity',
    inboundOffset: fabric.inboundOffset?.(bdf) ?? hb.busOffset,
    granule: pt === undefined ? TLP_BOUNDARY : pt.minPageSize,
    decisions: new Map(),
  };
}

function decisionFor(fabric: DmaFabric, req: Requester, provider: Bdf): P2pDecision {
  let d = req.decisions.get(provider);
  if (d === undefined) {
    d = calcP2pDecision(fabric.topology, provider, req.bdf);
    req.decisions.set(provider, d);
  }
  return d;
}

/** Routes one chunk (it never crosses the granule boundary). */
function routeChunk(
  fabric: DmaFabric,
  req: Requester,
  access: Access,
  dma: bigint,
  remaining: bigint,
): ChunkRoute {
  const { topology } = fabric;
  const { hb, chain, bdf: requester } = req;

  // Step 1: does a bridge below the root complex claim the address for a peer?
  let redirects = new Set<Bdf>();
  const asCpu = dma + hb.busOffset;
  const peerBar = barContaining(topology, asCpu);
  if (peerBar !== undefined && peerBar.function.hostBridge === req.fn.hostBridge) {
    const peer = peerBar.function.bdf;
    const decision = decisionFor(fabric, req, peer);
    if (decision.commonUpstream !== undefined) {
      const limit = peerBar.bar.size - peerBar.offset;
      if (decision.acsRedirects.length === 0) {
        const hops = switchHops(requester, decision);
        hops.push({ kind: 'peer', name: peer, note: `BAR${peerBar.bar.index}, reached by PCI bus address` });
        return {
          path: 'switch',
          phys: asCpu,
          target: {
            kind: 'peer-bar',
            bdf: peer,
            barIndex: peerBar.bar.index,
            offset: peerBar.offset,
            via: 'switch',
          },
          hops,
          stale: 0,
          limit,
        };
      }
      redirects = new Set(decision.acsRedirects);
    }
  }

  // Step 2: up to the root complex.
  const hops: AccessHop[] = [{ kind: 'device', name: requester }];
  hops.push(...portHops(chain.slice(1), redirects));
  hops.push({ kind: 'root-complex', name: hb.id });
  const unit = req.unit;
  if (unit === undefined || req.direct) {
    const phys = dma + req.inboundOffset;
    const land = landing(fabric, req, phys, remaining);
    return {
      path: 'direct',
      phys,
      target: land.target,
      hops: [...hops, ...land.hops],
      stale: 0,
      limit: land.limit,
    };
  }
  const before = unit.iommu.metrics.get(COUNTER.iotlbStaleHits);
  let phys: bigint;
  try {
    phys = unit.iommu.translate(unit.deviceId, dma, access);
  } catch (error) {
    if (!(error instanceof PhysrError)) throw error;
    hops.push({ kind: 'iommu', name: unit.iommu.name, note: 'fault' });
    return {
      path: 'iommu',
      phys: undefined,
      target: fault(error.errno, error.reason),
      hops,
      stale: 0,
      limit: remaining,
    };
  }
  const stale = unit.iommu.metrics.get(COUNTER.iotlbStaleHits) - before;
  hops.push({
    kind: 'iommu',
    name: unit.iommu.name,
    note: `iova ${formatHex(dma)} -> ${formatHex(phys)}${stale > 0 ? ' (stale IOTLB entry)' : ''}`,
  });
  const land = landing(fabric, req, phys, remaining);
  return {
    path: 'iommu',
    phys,
    target: land.target,
    hops: [...hops, ...land.hops],
    stale,
    limit: land.limit,
  };
}

function sameTarget(a: AccessTarget, b: AccessTarget): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'peer-bar' && b.kind === 'peer-bar')
    return a.bdf === b.bdf && a.barIndex === b.barIndex && a.via === b.via;
  return a.kind === 'ram';
}

function sameHops(a: readonly AccessHop[], b: readonly AccessHop[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.kind !== b[i]!.kind || a[i]!.name !== b[i]!.name) return false;
    // IOMMU hop notes name per-page addresses; other notes must match.
    if (a[i]!.kind !== 'iommu' && a[i]!.note !== b[i]!.note) return false;
  }
  return true;
}

/**
 * Routes an access of `length` bytes at `dmaAddress` by `requester`, chunk by chunk, translating
 * through the IOMMU as it goes (IOTLB fills, stale hits and faults are real side effects). Moves no
 * bytes: {@link performDma} does. Stops at the first failing chunk.
 */
export function routeDma(
  fabric: DmaFabric,
  requester: Bdf,
  access: Access,
  dmaAddress: bigint,
  length: number,
): DmaAccessRecord {
  if (!Number.isSafeInteger(length) || length < 0)
    throw new PhysrError('EINVAL', `DMA length ${length} must be a non-negative integer`);
  if (dmaAddress < 0n || dmaAddress + BigInt(length) > 1n << 64n)
    throw new PhysrError(
      'EINVAL',
      `DMA of ${length} bytes at ${formatHex(dmaAddress)} leaves the 64-bit space`,
    );
  const req = requesterOf(fabric, requester);
  const granule = req.granule;
  const end = dmaAddress + BigInt(length);
  const segments: AccessSegment[] = [];
  let moved = 0;
  let failure: DmaAccessRecord['fault'];
  let at = dmaAddress;
  while (at < end) {
    const boundary = (at / granule + 1n) * granule;
    let chunkEnd = boundary < end ? boundary : end;
    const route = routeChunk(fabric, req, access, at, chunkEnd - at);
    if (at + route.limit < chunkEnd) chunkEnd = at + route.limit;
    const size = Number(chunkEnd - at);
    const prev = segments.at(-1);
    if (route.target.kind === 'fault') {
      segments.push({
        dmaAddress: at,
        length: Number(end - at),
        path: route.path,
        physAddress: route.phys,
        target: route.target,
        hops: route.hops,
        staleHits: route.stale,
      });
      failure = { errno: route.target.errno, reason: route.target.reason };
      break;
    }
    if (
      prev !== undefined &&
      prev.path === route.path &&
      prev.physAddress !== undefined &&
      route.phys !== undefined &&
      prev.physAddress + BigInt(prev.length) === route.phys &&
      prev.length + size <= BYTE_STORE_MAX_TRANSFER &&
      sameTarget(prev.target, route.target) &&
      sameHops(prev.hops, route.hops)
    ) {
      segments[segments.length - 1] = {
        ...prev,
        length: prev.length + size,
        staleHits: prev.staleHits + route.stale,
      };
    } else {
      segments.push({
        dmaAddress: at,
        length: size,
        path: route.path,
        physAddress: route.phys,
        target: route.target,
        hops: route.hops,
        staleHits: route.stale,
      });
    }
    moved += size;
    at = chunkEnd;
  }
  return { requester, access, dmaAddress, length, segments, bytesMoved: moved, fault: failure };
}

function countSegment(metrics: Metrics, segment: AccessSegment): void {
  if (segment.target.kind === 'ram') metrics.add(DEVICE_COUNTER.ramBytes, segment.length);
  else if (segment.target.kind === 'peer-bar')
    metrics.add(
      segment.target.via === 'switch' ? DEVICE_COUNTER.switchP2pBytes : DEVICE_COUNTER.hostBridgeP2pBytes,
      segment.length,
    );
  if (segment.staleHits > 0) metrics.add(DEVICE_COUNTER.staleAccessBytes, segment.length);
}

function countRecord(metrics: Metrics, record: DmaAccessRecord): void {
  metrics.add(DEVICE_COUNTER.accesses);
  for (const segment of record.segments) countSegment(metrics, segment);
  if (record.fault !== undefined) {
    metrics.add(DEVICE_COUNTER.failedAccesses);
    if (record.fault.errno === 'EREMOTEIO') metrics.add(DEVICE_COUNTER.unsupportedRequests);
  }
}

/** A device write: routes it and stores the bytes of every segment that reached a target. */
export function performDmaWrite(
  fabric: DmaFabric,
  requester: Bdf,
  dmaAddress: bigint,
  bytes: Uint8Array,
): DmaAccessRecord {
  const record = routeDma(fabric, requester, 'write', dmaAddress, bytes.length);
  let offset = 0;
  for (const segment of record.segments) {
    if (segment.target.kind === 'fault' || segment.physAddress === undefined) break;
    fabric.bytes.write(segment.physAddress, bytes.subarray(offset, offset + segment.length));
    offset += segment.length;
  }
  countRecord(fabric.metrics, record);
  return record;
}

/** A device read: routes it and gathers the bytes (the tail after a fault stays zero). */
export function performDmaRead(
  fabric: DmaFabric,
  requester: Bdf,
  dmaAddress: bigint,
  length: number,
): { record: DmaAccessRecord; data: Uint8Array } {
  const record = routeDma(fabric, requester, 'read', dmaAddress, length);
  const data = new Uint8Array(length);
  let offset = 0;
  for (const segment of record.segments) {
    if (segment.target.kind === 'fault' || segment.physAddress === undefined) break;
    fabric.bytes.readInto(segment.physAddress, data.subarray(offset, offset + segment.length));
    offset += segment.length;
  }
  countRecord(fabric.metrics, record);
  return { record, data };
}

/** The one-line story of an access, hop by hop. */
export function describeAccess(record: DmaAccessRecord): string {
  const parts = record.segments.map((s) => {
    const where =
      s.target.kind === 'ram'
        ? `RAM (${s.target.name})`
        : s.target.kind === 'peer-bar'
          ? `BAR${s.target.barIndex} of ${s.target.bdf} via ${s.target.via}`
          : `${s.target.errno}: ${s.target.reason}`;
    const path = s.hops.map((h) => h.name).join(' -> ');
    return `${formatHex(s.dmaAddress)}+${s.length}: ${path} => ${where}`;
  });
  return `${record.requester} ${record.access} ${record.length} bytes at ${formatHex(record.dmaAddress)}: ${parts.join('; ')}`;
}

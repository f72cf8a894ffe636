/**
 * Linux 7.1's P2P bookkeeping: a `struct p2pdma_provider` per memory BAR (pcim_p2pdma_provider,
 * drivers/pci/p2pdma.c, 6.19), holding the owner and the bus offset; the map type is decided once per
 * (provider owner, client) pair and cached (pci_p2pdma_map_type and its map_types xarray), and
 * callers carry it in a `pci_p2pdma_map_state` {mem, map} (include/linux/pci-p2pdma.h) that
 * pci_p2pdma_state fills from a page. So in 7.1 P2P is a property of a BAR, looked up per page and
 * passed down to the DMA API as an attribute (DMA_ATTR_MMIO for through-host-bridge), never stored
 * per range — the physr proposal instead classifies every range of its list.
 */
import { fail, formatHex } from '../core/index.ts';
import { calcP2pDecision, type P2pMapType } from './p2pdma.ts';
import { barContaining, hostBridgeOf } from './pci-query.ts';
import type { Bdf, PciTopology } from './pci-types.ts';

/** struct p2pdma_provider: one per memory BAR of a P2P-capable function. */
export interface P2pdmaProvider {
  /** provider->owner: the function whose BAR this is. */
  readonly owner: Bdf;
  readonly bar: number;
  /**
   * provider->bus_offset = pci_bus_address - pci_resource_start: added to a CPU physical address
   * to get the address peers use (pci_p2pdma_bus_addr_map). Signed here: the host bridge's window
   * offset, negated.
   */
  readonly busOffset: bigint;
}

/** enum pci_p2pdma_map_type, with PCI_P2PDMA_MAP_NONE for memory that is not a P2P provider's. */
export type P2pdmaMapTypeOrNone = 'none' | P2pMapType;

/** struct pci_p2pdma_map_state: the provider last looked up and its map type for the client. */
export interface P2pdmaMapState {
  mem: P2pdmaProvider | undefined;
  map: P2pdmaMapTypeOrNone;
}

/** A fresh state, as callers memset theirs (map PCI_P2PDMA_MAP_NONE). */
export function p2pdmaMapState(): P2pdmaMapState {
  return { mem: undefined, map: 'none' };
}

/** Each topology's providers, one object per (function, BAR) as p2p->mem[bar] is one array slot. */
const providersByTopology = new WeakMap<PciTopology, Map<string, P2pdmaProvider>>();
/** p2pdma->map_types: the cached map type per (provider owner, client). */
const mapTypesByTopology = new WeakMap<PciTopology, Map<string, P2pMapType>>();

/** How many map-type decisions a topology has computed (not served from the cache). */
const decisionsByTopology = new WeakMap<PciTopology, { computed: number }>();

/**
 * pcim_p2pdma_provider(pdev, bar): the provider of a memory BAR; EINVAL when the function has no
 * such memory BAR (the kernel returns NULL for an I/O or absent BAR).
 */
export function pcimP2pdmaProvider(topology: PciTopology, owner: Bdf, bar: number): P2pdmaProvider {
  const key = `${owner}/${bar}`;
  let providers = providersByTopology.get(topology);
  if (providers === undefined) {
    providers = new Map();
    providersByTopology.set(topology, providers);
  }
  const known = providers.get(key);
  if (known !== undefined) return known;
  const fn = topology.functions.get(owner);
  const found = fn?.bars.find((b) => b.index === bar && !b.io && b.size > 0n);
  if (fn === undefined || found === undefined) fail('EINVAL', `${owner} has no memory BAR ${bar}`);
  const provider: P2pdmaProvider = { owner, bar, busOffset: -hostBridgeOf(topology, owner).busOffset };
  providers.set(key, provider);
  return provider;
}

/** page->pgmap->provider: the provider whose BAR holds `phys`, or undefined for non-BAR memory. */
export function p2pdmaProviderOf(topology: PciTopology, phys: bigint): P2pdmaProvider | undefined {
  const hit = barContaining(topology, phys);
  if (hit === undefined) return undefined;
  return pcimP2pdmaProvider(topology, hit.function.bdf, hit.bar.index);
}

/**
 * pci_p2pdma_map_type(provider, dev): the map type for `client`, computed once per (owner, client)
 * and then served from the cache, as the kernel's map_types xarray does.
 */
export function pciP2pdmaMapType(topology: PciTopology, provider: P2pdmaProvider, client: Bdf): P2pMapType {
  let cache = mapTypesByTopology.get(topology);
  if (cache === undefined) {
    cache = new Map();
    mapTypesByTopology.set(topology, cache);
  }
  const key = `${provider.owner}>${client}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const decided = calcP2pDecision(topology, provider.owner, client).mapType;
  cache.set(key, decided);
  const counter = decisionsByTopology.get(topology) ?? { computed: 0 };
  counter.computed++;
  decisionsByTopology.set(topology, counter);
  return decided;
}

/** How many (owner, client) map types were computed on this topology (the rest came from the cache). */
export function p2pdmaDecisionsComputed(topology: PciTopology): number {
  return decisionsByTopology.get(topology)?.computed ?? 0;
}

/**
 * pci_p2pdma_state(state, dev, page): 'none' for memory outside every BAR; otherwise updates the
 * state with the page's provider and its map type for `client` and returns that type.
 */
export function pciP2pdmaState(
  state: P2pdmaMapState,
  topology: PciTopology,
  client: Bdf,
  phys: bigint,
): P2pdmaMapTypeOrNone {
  const provider = p2pdmaProviderOf(topology, phys);
  if (provider === undefined) return 'none';
  if (state.mem !== provider) {
    state.mem = provider;
    state.map = pciP2pdmaMapType(topology, provider, client);
  }
  return state.map;
}

/** pci_p2pdma_bus_addr_map(provider, paddr): paddr + provider->bus_offset. */
export function pciP2pdmaBusAddrMap(provider: P2pdmaProvider, phys: bigint): bigint {
  const bus = phys + provider.busOffset;
  if (bus < 0n) fail('EINVAL', `${formatHex(phys)} lies below ${provider.owner}'s bus window`);
  return bus;
}

/**
 * Declaring a PCI topology in code. A {@link TopologySpec} is plain data (host bridges holding a tree
 * of functions); {@link buildTopology} validates it, numbers the buses depth-first the way the kernel's
 * enumeration does (drivers/pci/probe.c: pci_scan_bridge hands out secondary/subordinate numbers),
 * names every function by BDF, and assigns BAR CPU addresses from the host bridge's windows with
 * natural alignment. The small constructors at the end (rootPort, pciSwitch, endpoint, ...) make
 * declarations read like `lspci -tv`.
 */
import { alignUp, fail, formatHex, isPowerOfTwo, SZ_1G } from '../core/index.ts';
import { ACS_ABSENT } from './pci-acs.ts';
import { formatBdf, slotOf } from './pci-bdf.ts';
import type {
  AcsState,
  Bdf,
  CpuInfo,
  HostBridge,
  PciBar,
  PciFunction,
  PciFunctionKind,
  PciTopology,
} from './pci-types.ts';

export interface BarSpec {
  /** BAR slot 0..5 (0..1 for bridges); default: the next free slot. A 64-bit BAR uses two slots. */
  readonly index?: number;
  /** Power of two; 4 GiB and above needs `is64`. */
  readonly size: bigint;
  readonly prefetchable?: boolean;
  /** Default: same as `prefetchable`, or true when the size is 4 GiB or more. */
  readonly is64?: boolean;
  readonly io?: boolean;
  /** A fixed CPU address instead of one assigned from the host bridge's window. */
  readonly cpuAddress?: bigint;
}

export interface FunctionSpec {
  readonly kind: PciFunctionKind;
  /** Device number on its bus; default 0 below a port, else the next free number. */
  readonly device?: number;
  readonly function?: number;
  readonly name?: string;
  readonly vendorId?: number;
  readonly deviceId?: number;
  readonly classCode?: number;
  /** Default: no ACS capability. */
  readonly acs?: AcsState;
  readonly bars?: readonly BarSpec[];
  /** Default: true exactly when other functions share the slot. */
  readonly multifunction?: boolean;
  readonly numaNode?: number;
  readonly children?: readonly FunctionSpec[];
}

export interface WindowSpec {
  readonly base: bigint;
  readonly size: bigint;
}

export interface HostBridgeSpec {
  readonly segment?: number;
  readonly busStart?: number;
  readonly busEnd?: number;
  /** Default `pciSSSS:BB`, as sysfs names the host bridge. */
  readonly id?: string;
  /** IDs of the host bridge function at devfn 00.0 of the root bus. */
  readonly vendorId?: number;
  readonly deviceId?: number;
  /** Add that 00.0 function to the topology (default: when vendorId is given). */
  readonly hostBridgeDevice?: boolean;
  /** CPU address minus bus address of the memory windows. */
  readonly busOffset?: bigint;
  readonly numaNode?: number;
  /** Window for non-prefetchable and 32-bit BARs (must end below 4 GiB). */
  readonly mmio32?: WindowSpec;
  /** Window for 64-bit prefetchable BARs. */
  readonly mmio64?: WindowSpec;
  readonly children?: readonly FunctionSpec[];
}

export interface TopologySpec {
  readonly cpu?: CpuInfo;
  readonly hostBridges: readonly HostBridgeSpec[];
}

const SZ_4G = 4n * SZ_1G;
const BRIDGE_KINDS: ReadonlySet<PciFunctionKind> = new Set([
  'root-port',
  'switch-upstream',
  'switch-downstream',
  'pci-bridge',
]);

/** Which kinds may sit directly below each parent (undefined = the root bus). */
const ALLOWED_CHILDREN: Record<PciFunctionKind | 'root-bus', ReadonlySet<PciFunctionKind>> = {
  'root-bus': new Set([
    'host-bridge-device',
    'root-port',
    'rc-integrated-endpoint',
    'pci-bridge',
    'endpoint',
  ]),
  'root-port': new Set(['switch-upstream', 'endpoint', 'pci-bridge']),
  'switch-downstream': new Set(['switch-upstream', 'endpoint', 'pci-bridge']),
  'switch-upstream': new Set(['switch-downstream']),
  'pci-bridge': new Set(['endpoint', 'pci-bridge']),
  endpoint: new Set(),
  'rc-integrated-endpoint': new Set(),
  'host-bridge-device': new Set(),
};

/** A PCIe link below a root or downstream port carries only device 0 (pci_scan_slot's only_one_child). */
function isPcieLinkParent(kind: PciFunctionKind | 'root-bus'): boolean {
  return kind === 'root-port' || kind === 'switch-downstream';
}

interface Window {
  readonly name: string;
  readonly base: bigint;
  readonly last: bigint;
  /** Sorted, non-overlapping [start, last] ranges already taken. */
  readonly used: { start: bigint; last: bigint }[];
}

function makeWindow(name: string, spec: WindowSpec, where: string): Window {
  if (spec.size <= 0n) fail('EINVAL', `${where}: ${name} window size must be positive`);
  return { name, base: spec.base, last: spec.base + spec.size - 1n, used: [] };
}

function overlapsUsed(window: Window, start: bigint, last: bigint): boolean {
  return window.used.some((r) => start <= r.last && r.start <= last);
}

function takeRange(window: Window, start: bigint, last: bigint): void {
  window.used.push({ start, last });
  window.used.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** First naturally aligned gap of `size` in the window. */
function allocateIn(window: Window, size: bigint): bigint | undefined {
  let candidate = alignUp(window.base, size);
  for (const r of window.used) {
    if (candidate + size - 1n < r.start) break;
    if (candidate <= r.last) candidate = alignUp(r.last + 1n, size);
  }
  return candidate + size - 1n <= window.last ? candidate : undefined;
}

interface BridgeState {
  readonly spec: HostBridgeSpec;
  readonly bridge: HostBridge;
  readonly mmio32: Window;
  readonly mmio64: Window;
  readonly io: Window;
  nextBus: number;
}

interface PendingBar {
  readonly owner: Bdf;
  readonly spec: BarSpec;
  readonly index: number;
  readonly is64: boolean;
  readonly prefetchable: boolean;
  readonly io: boolean;
  cpuAddress: bigint | undefined;
}

interface Draft {
  bdf: Bdf;
  kind: PciFunctionKind;
  spec: FunctionSpec;
  parent: Bdf | undefined;
  hostBridge: string;
  secondaryBus: number | undefined;
  subordinateBus: number | undefined;
  numaNode: number | undefined;
  bars: PendingBar[];
  multifunction: boolean;
}

function hex2(value: number): string {
  return value.toString(16).padStart(2, '0');
}

/** Validates a declaration and produces a PciTopology; any problem is EINVAL naming the function. */
export function buildTopology(spec: TopologySpec): PciTopology {
  const cpu: CpuInfo = spec.cpu ?? { vendor: 'unknown', family: undefined };
  if (spec.hostBridges.length === 0) fail('EINVAL', 'a PCI topology needs at least one host bridge');
  const drafts = new Map<Bdf, Draft>();
  const states: BridgeState[] = spec.hostBridges.map((hb, i) => makeBridgeState(hb, i));
  checkBusRanges(states);
  checkWindows(states);

  for (const state of states) {
    const { bridge } = state;
    const children: FunctionSpec[] = [];
    const wantsDevice = state.spec.hostBridgeDevice ?? state.spec.vendorId !== undefined;
    if (wantsDevice) {
      children.push({
        kind: 'host-bridge-device',
        device: 0,
        function: 0,
        name: 'Host bridge',
        vendorId: state.spec.vendorId,
        deviceId: state.spec.deviceId,
        classCode: 0x060000,
      });
    }
    children.push(...(state.spec.children ?? []));
    placeBus(state, drafts, children, bridge.busStart, undefined, 'root-bus', bridge.id);
  }

  settleMultifunction(drafts);
  assignBars(drafts, states);

  const sorted = [...drafts.values()].sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0));
  const functions = new Map<Bdf, PciFunction>();
  for (const d of sorted) {
    functions.set(d.bdf, {
      bdf: d.bdf,
      kind: d.kind,
      vendorId: d.spec.vendorId,
      deviceId: d.spec.deviceId,
      classCode: d.spec.classCode,
      name: d.spec.name,
      parent: d.parent,
      hostBridge: d.hostBridge,
      bars: d.bars.map(
        (b): PciBar => ({
          index: b.index,
          cpuAddress: b.cpuAddress!,
          size: b.spec.size,
          prefetchable: b.prefetchable,
          is64: b.is64,
          io: b.io,
        }),
      ),
      acs: d.spec.acs ?? ACS_ABSENT,
      multifunction: d.multifunction,
      secondaryBus: d.secondaryBus,
      subordinateBus: d.subordinateBus,
      numaNode: d.numaNode,
      reportedIommuGroup: undefined,
    });
  }
  return { hostBridges: states.map((s) => s.bridge), functions, cpu };
}

function makeBridgeState(spec: HostBridgeSpec, i: number): BridgeState {
  const segment = spec.segment ?? 0;
  const busStart = spec.busStart ?? 0;
  const busEnd = spec.busEnd ?? 0xff;
  const where = `host bridge #${i}`;
  if (!Number.isInteger(segment) || segment < 0 || segment > 0xffff)
    fail('EINVAL', `${where}: segment ${segment} is outside 0..0xffff`);
  if (
    !Number.isInteger(busStart) ||
    !Number.isInteger(busEnd) ||
    busStart < 0 ||
    busEnd > 0xff ||
    busStart > busEnd
  )
    fail('EINVAL', `${where}: bus range ${busStart}..${busEnd} is not within 0..255 in order`);
  const busOffset = spec.busOffset ?? 0n;
  const id = spec.id ?? `pci${segment.toString(16).padStart(4, '0')}:${hex2(busStart)}`;
  const mmio32 = makeWindow(
    'mmio32',
    spec.mmio32 ?? { base: 0x8000_0000n + BigInt(i) * 0x800_0000n, size: 0x800_0000n },
    id,
  );
  const mmio64 = makeWindow(
    'mmio64',
    spec.mmio64 ?? { base: 0x200_0000_0000n * BigInt(i + 1), size: 0x100_0000_0000n },
    id,
  );
  // 32-bit BARs need bus addresses below 4 GiB; the CPU side may sit anywhere (ARM maps it high).
  if (mmio32.last - busOffset >= SZ_4G)
    fail(
      'EINVAL',
      `${id}: mmio32 window ends at bus address ${formatHex(mmio32.last - busOffset)}, above 4 GiB`,
    );
  for (const w of [mmio32, mmio64]) {
    if (w.base < busOffset)
      fail(
        'EINVAL',
        `${id}: ${w.name} window ${formatHex(w.base)} lies below the bus offset ${formatHex(busOffset)}`,
      );
  }
  // Each host bridge gets its own slice of I/O port space (64 KiB shared machine-wide).
  const io = makeWindow('io', { base: 0x1000n + BigInt(i) * 0x1000n, size: 0x1000n }, id);
  return {
    spec,
    bridge: {
      id,
      segment,
      busStart,
      busEnd,
      vendorId: spec.vendorId,
      deviceId: spec.deviceId,
      busOffset,
      numaNode: spec.numaNode,
    },
    mmio32,
    mmio64,
    io,
    nextBus: busStart,
  };
}

function checkBusRanges(states: readonly BridgeState[]): void {
  for (let i = 0; i < states.length; i++) {
    for (let j = i + 1; j < states.length; j++) {
      const a = states[i]!.bridge;
      const b = states[j]!.bridge;
      if (a.id === b.id) fail('EINVAL', `two host bridges are both named ${a.id}`);
      if (a.segment === b.segment && a.busStart <= b.busEnd && b.busStart <= a.busEnd)
        fail('EINVAL', `host bridges ${a.id} and ${b.id} claim overlapping buses in segment ${a.segment}`);
    }
  }
}

function checkWindows(states: readonly BridgeState[]): void {
  const all = states.flatMap((s) => [s.mmio32, s.mmio64].map((w) => ({ id: s.bridge.id, w })));
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i]!;
      const b = all[j]!;
      if (a.w.base <= b.w.last && b.w.base <= a.w.last)
        fail('EINVAL', `${a.id} ${a.w.name} window overlaps ${b.id} ${b.w.name} window`);
    }
  }
}

/** Places the functions of one bus (sorted by devfn, as the kernel scans), recursing into bridges. */
function placeBus(
  state: BridgeState,
  drafts: Map<Bdf, Draft>,
  specs: readonly FunctionSpec[],
  bus: number,
  parent: Bdf | undefined,
  parentKind: PciFunctionKind | 'root-bus',
  hostBridge: string,
): void {
  const where = parent === undefined ? `root bus ${hex2(bus)} of ${hostBridge}` : `below ${parent}`;
  const allowed = ALLOWED_CHILDREN[parentKind];
  const taken = new Set<number>();
  for (const s of specs) if (s.device !== undefined) taken.add(s.device);
  let nextAuto = 0;
  const placed: { spec: FunctionSpec; bdf: Bdf; devfn: number }[] = [];
  for (const s of specs) {
    if (!allowed.has(s.kind)) fail('EINVAL', `${where}: a ${s.kind} cannot sit there`);
    let device = s.device;
    if (device === undefined) {
      if (isPcieLinkParent(parentKind)) device = 0;
      else {
        while (taken.has(nextAuto)) nextAuto++;
        device = nextAuto++;
      }
    }
    const fn = s.function ?? 0;
    if (isPcieLinkParent(parentKind) && device !== 0)
      fail('EINVAL', `${where}: device ${device} below a PCIe port; a PCIe link carries only device 0`);
    const bdf = formatBdf({ segment: state.bridge.segment, bus, device, function: fn });
    if (drafts.has(bdf) || placed.some((p) => p.bdf === bdf)) fail('EINVAL', `${bdf} is declared twice`);
    if (s.kind === 'host-bridge-device' && parent !== undefined)
      fail('EINVAL', `${bdf}: host bridge device below a bridge`);
    placed.push({ spec: s, bdf, devfn: (device << 3) | fn });
  }
  placed.sort((a, b) => a.devfn - b.devfn);
  for (const { spec, bdf } of placed) {
    const isBridge = BRIDGE_KINDS.has(spec.kind);
    if (!isBridge && (spec.children?.length ?? 0) > 0)
      fail('EINVAL', `${bdf}: a ${spec.kind} cannot have children`);
    const draft: Draft = {
      bdf,
      kind: spec.kind,
      spec,
      parent,
      hostBridge,
      secondaryBus: undefined,
      subordinateBus: undefined,
      numaNode: spec.numaNode ?? state.bridge.numaNode,
      bars: [],
      multifunction: false,
    };
    drafts.set(bdf, draft);
    draft.bars = planBars(bdf, spec, isBridge);
    if (isBridge) {
      if (state.nextBus >= state.bridge.busEnd)
        fail(
          'EINVAL',
          `${bdf}: no bus number left for its secondary bus (${hostBridge} ends at bus ${hex2(state.bridge.busEnd)})`,
        );
      state.nextBus += 1;
      draft.secondaryBus = state.nextBus;
      placeBus(state, drafts, spec.children ?? [], state.nextBus, bdf, spec.kind, hostBridge);
      draft.subordinateBus = state.nextBus;
    }
  }
}

function planBars(bdf: Bdf, spec: FunctionSpec, isBridge: boolean): PendingBar[] {
  const maxSlot = isBridge ? 1 : 5;
  const slots = new Set<number>();
  const out: PendingBar[] = [];
  for (const b of spec.bars ?? []) {
    const io = b.io ?? false;
    const prefetchable = b.prefetchable ?? false;
    const is64 = b.is64 ?? (prefetchable || b.size >= SZ_4G);
    const what = `${bdf} BAR${b.index ?? ''}`;
    if (io && (is64 || prefetchable))
      fail('EINVAL', `${what}: an I/O BAR is neither 64-bit nor prefetchable`);
    if (!isPowerOfTwo(b.size)) fail('EINVAL', `${what}: size ${formatHex(b.size)} is not a power of two`);
    if (b.size < (io ? 4n : 16n)) fail('EINVAL', `${what}: size ${formatHex(b.size)} is below the minimum`);
    if (io && b.size > 0x100n) fail('EINVAL', `${what}: an I/O BAR is at most 256 bytes`);
    if (!is64 && b.size >= SZ_4G)
      fail('EINVAL', `${what}: a 32-bit BAR cannot be ${formatHex(b.size)} bytes`);
    const width = is64 ? 2 : 1;
    let index = b.index;
    if (index === undefined) {
      index = 0;
      while (index <= maxSlot && (slots.has(index) || (width === 2 && slots.has(index + 1)))) index++;
    }
    if (!Number.isInteger(index) || index < 0 || index + width - 1 > maxSlot)
      fail('EINVAL', `${bdf}: BAR index ${index} (${width * 32}-bit) does not fit in slots 0..${maxSlot}`);
    for (let k = index; k < index + width; k++) {
      if (slots.has(k)) fail('EINVAL', `${bdf}: BAR slot ${k} is used twice`);
      slots.add(k);
    }
    if (b.cpuAddress !== undefined && b.cpuAddress % b.size !== 0n)
      fail('EINVAL', `${bdf} BAR${index}: address ${formatHex(b.cpuAddress)} is not aligned to its size`);
    out.push({ owner: bdf, spec: b, index, is64, prefetchable, io, cpuAddress: b.cpuAddress });
  }
  return out.sort((a, b) => a.index - b.index);
}

/** Functions sharing a slot are one multi-function device; function 0 must exist (the kernel scans from it). */
function settleMultifunction(drafts: Map<Bdf, Draft>): void {
  const slots = new Map<string, Draft[]>();
  for (const d of drafts.values()) {
    const key = slotOf(d.bdf);
    const list = slots.get(key);
    if (list === undefined) slots.set(key, [d]);
    else list.push(d);
  }
  for (const [slot, list] of slots) {
    if (!list.some((d) => d.bdf.endsWith('.0')))
      fail('EINVAL', `${slot}: functions ${list.map((d) => d.bdf).join(', ')} without function 0`);
    const shared = list.length > 1;
    for (const d of list) {
      if (d.spec.multifunction === false && shared)
        fail('EINVAL', `${d.bdf}: declared single-function but its slot holds ${list.length} functions`);
      d.multifunction = d.spec.multifunction ?? shared;
    }
  }
}

function windowFor(state: BridgeState, bar: PendingBar): Window {
  if (bar.io) return state.io;
  return bar.is64 && bar.prefetchable ? state.mmio64 : state.mmio32;
}

/** Fixed addresses first (checked against the windows and each other), then the rest in BDF order. */
function assignBars(drafts: Map<Bdf, Draft>, states: readonly BridgeState[]): void {
  const byId = new Map(states.map((s) => [s.bridge.id, s]));
  const ordered = [...drafts.values()].sort((a, b) => (a.bdf < b.bdf ? -1 : 1));
  const bars = ordered.flatMap((d) => d.bars.map((bar) => ({ bar, state: byId.get(d.hostBridge)! })));
  for (const { bar, state } of bars) {
    if (bar.cpuAddress === undefined) continue;
    const last = bar.cpuAddress + bar.spec.size - 1n;
    const fits = [state.mmio32, state.mmio64, state.io].find(
      (w) => bar.cpuAddress! >= w.base && last <= w.last,
    );
    if (fits === undefined || (bar.io && fits !== state.io) || (!bar.io && fits === state.io))
      fail(
        'EINVAL',
        `${bar.owner} BAR${bar.index}: ${formatHex(bar.cpuAddress)} is outside ${state.bridge.id}'s windows`,
      );
    if (!bar.is64 && fits === state.mmio64)
      fail('EINVAL', `${bar.owner} BAR${bar.index}: a 32-bit BAR cannot sit in the 64-bit window`);
    if (overlapsUsed(fits, bar.cpuAddress, last))
      fail('EINVAL', `${bar.owner} BAR${bar.index}: ${formatHex(bar.cpuAddress)} overlaps another BAR`);
    takeRange(fits, bar.cpuAddress, last);
  }
  // Larger BARs first within each window keeps alignment padding small, as pbus_size_mem sorts by size.
  const floating = bars.filter((b) => b.bar.cpuAddress === undefined);
  floating.sort((a, b) =>
    a.bar.spec.size > b.bar.spec.size ? -1 : a.bar.spec.size < b.bar.spec.size ? 1 : 0,
  );
  for (const { bar, state } of floating) {
    let window = windowFor(state, bar);
    let at = allocateIn(window, bar.spec.size);
    // A 64-bit prefetchable BAR may fall back to the 32-bit window when no 64-bit space is left.
    if (at === undefined && window === state.mmio64) {
      window = state.mmio32;
      at = allocateIn(window, bar.spec.size);
    }
    if (at === undefined)
      fail(
        'EINVAL',
        `${bar.owner} BAR${bar.index}: no room for ${formatHex(bar.spec.size)} bytes in ${state.bridge.id}'s ${window.name} window`,
      );
    takeRange(window, at, at + bar.spec.size - 1n);
    bar.cpuAddress = at;
  }
}

// ---- Constructors that make declarations read like the tree they describe ----

type Common = Omit<FunctionSpec, 'kind' | 'children'>;

export function rootPort(options: Common, children: readonly FunctionSpec[] = []): FunctionSpec {
  return { ...options, kind: 'root-port', children };
}

export function downstreamPort(options: Common, children: readonly FunctionSpec[] = []): FunctionSpec {
  return { ...options, kind: 'switch-downstream', children };
}

/** A PCIe switch: its upstream port holding the given downstream ports (device numbers 0, 1, ...). */
export function pciSwitch(upstream: Common, downstreamPorts: readonly FunctionSpec[]): FunctionSpec {
  return { ...upstream, kind: 'switch-upstream', children: downstreamPorts };
}

export function pciBridge(options: Common, children: readonly FunctionSpec[] = []): FunctionSpec {
  return { ...options, kind: 'pci-bridge', children };
}

export function endpoint(options: Common): FunctionSpec {
  return { ...options, kind: 'endpoint' };
}

export function rcIntegratedEndpoint(options: Common): FunctionSpec {
  return { ...options, kind: 'rc-integrated-endpoint' };
}

/**
 * Import a PCI topology from lspci text: `lspci -tv` for the hierarchy (which bridge each function
 * sits behind, bridges' bus ranges) and `lspci -nn -vvv` for IDs, class, BARs (`Region N:`), the
 * PCI Express port type and ACS (`ACSCap:`/`ACSCtl:`). Formats as pciutils' lspci prints them.
 */
import { fail, parseAddress, parseSize, type SourceLocation } from '../core/index.ts';
import {
  assembleTopology,
  type FunctionFacts,
  hostBridgeId,
  type ImportNote,
  parentsFromBusNumbers,
  type TopologyImport,
  UNKNOWN_CPU,
} from './capture-import.ts';
import { acsBitsFromRegister } from './pci-acs.ts';
import { formatBdf, parseBdf } from './pci-bdf.ts';
import {
  type ExtendedSpaceFacts,
  functionKind,
  lacksExtendedSpace,
  type PciePortType,
} from './pci-config.ts';
import type { AcsBits, AcsState, Bdf, PciBar } from './pci-types.ts';

export interface LspciInput {
  /** `lspci -t`, `-tv` or `-tvnn` output; without it the hierarchy comes from the bridges' bus numbers. */
  readonly tree?: string;
  /** `lspci -nn -vvv` output (with or without -D, -nn); optional when the tree is given. */
  readonly verbose?: string;
  readonly treeFile?: string;
  readonly verboseFile?: string;
}

interface TreeEntry {
  readonly bdf: Bdf;
  readonly parent: Bdf | undefined;
  readonly host: string;
  readonly secondaryBus: number | undefined;
  readonly subordinateBus: number | undefined;
  readonly line: number;
  /** `[vvvv:dddd]` that `lspci -tvnn` prints after the name. */
  readonly vendorId: number | undefined;
  readonly deviceId: number | undefined;
  readonly name: string | undefined;
}

interface Opener {
  /** Column just past the opener's bracket; children connect further right. */
  readonly end: number;
  readonly domain: number;
  readonly bus: number;
  readonly bridge: Bdf | undefined;
  readonly host: string;
}

const ROOT_TOKEN = /\[([0-9a-f]{4,8}):([0-9a-f]{2})\]/gi;
// A device hangs off a connector dash; a bridge adds `-[SS]` or `-[SS-EE]` (secondary-subordinate).
const DEVICE_TOKEN = /-([01][0-9a-f])\.([0-7])(?:-\[([0-9a-f]{2})(?:-([0-9a-f]{2}))?\])?/gi;

/**
 * Parses `lspci -tv`. The tree is drawn in columns: a function belongs to the nearest bus opened
 * (by a root `[DDDD:BB]` or a bridge's `-[SS-EE]`) to its left that is still open.
 */
export function parseLspciTree(text: string, file = 'lspci -tv'): TreeEntry[] {
  const entries: TreeEntry[] = [];
  const seen = new Map<Bdf, number>();
  let openers: Opener[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (line.trim() === '') continue;
    const location: SourceLocation = { file, line: index + 1 };
    const tokens: { column: number; root?: RegExpExecArray; device?: RegExpExecArray }[] = [];
    // Only the drawing part (before the first device name) holds tokens.
    for (const m of line.matchAll(ROOT_TOKEN)) tokens.push({ column: m.index, root: m });
    for (const m of line.matchAll(DEVICE_TOKEN)) tokens.push({ column: m.index, device: m });
    tokens.sort((a, b) => a.column - b.column);
    const nameStart = firstNameColumn(line);
    const drawing = line.slice(0, nameStart);
    checkDrawing(drawing, location);
    const named = nameOfLine(line, nameStart);
    let sawToken = false;
    for (const token of tokens) {
      if (token.column >= nameStart) break;
      sawToken = true;
      openers = openers.filter((o) => o.end <= token.column);
      if (token.root !== undefined) {
        const domain = Number.parseInt(token.root[1]!, 16);
        const bus = Number.parseInt(token.root[2]!, 16);
        openers.push({
          end: token.column + token.root[0].length,
          domain,
          bus,
          bridge: undefined,
          host: hostBridgeId(domain, bus),
        });
        continue;
      }
      const m = token.device!;
      const bus = openers.at(-1);
      if (bus === undefined) {
        fail('EINVAL', `expected a root bus "[DDDD:BB]" before device ${m[1]}.${m[2]}`, {
          ...location,
          column: token.column + 1,
        });
      }
      const bdf = formatBdf({
        segment: bus.domain,
        bus: bus.bus,
        device: Number.parseInt(m[1]!, 16),
        function: Number.parseInt(m[2]!, 16),
      });
      const secondary = m[3] === undefined ? undefined : Number.parseInt(m[3], 16);
      const subordinate = m[4] === undefined ? secondary : Number.parseInt(m[4], 16);
      const earlier = seen.get(bdf);
      if (earlier !== undefined)
        fail(
          'EINVAL',
          `${bdf} appears twice in the tree (first on line ${earlier}); two captures pasted together?`,
          {
            ...location,
            column: token.column + 1,
          },
        );
      seen.set(bdf, index + 1);
      // The name belongs to the last device token on the line.
      const last = tokens.filter((t) => t.device !== undefined && t.column < nameStart).at(-1) === token;
      entries.push({
        bdf,
        parent: bus.bridge,
        host: bus.host,
        secondaryBus: secondary,
        subordinateBus: subordinate,
        line: index + 1,
        vendorId: last ? named.vendorId : undefined,
        deviceId: last ? named.deviceId : undefined,
        name: last ? named.name : undefined,
      });
      if (secondary !== undefined) {
        openers.push({
          end: token.column + m[0].length,
          domain: bus.domain,
          bus: secondary,
          bridge: bdf,
          host: bus.host,
        });
      }
    }
    if (!sawToken && !/^[\s|\\+-]*$/.test(line)) {
      fail(
        'EINVAL',
        `expected a tree line ("+-DD.F  name" or "-[DDDD:BB]-"), found "${line.trim()}"`,
        location,
      );
    }
  }
  return entries;
}

/**
 * A drawing whose brackets do not close, or a bus range with no device number before it, is a
 * truncated or mangled line: refused where it is, never silently attached to the wrong bridge.
 */
function checkDrawing(drawing: string, location: SourceLocation): void {
  const open = drawing.lastIndexOf('[');
  if (open > drawing.lastIndexOf(']'))
    fail('EINVAL', `"${drawing.trim()}" ends inside a bracket (a truncated line?)`, {
      ...location,
      column: open + 1,
    });
  const orphan = /(^|[^0-7\]])-\[([0-9a-f]{2}(?:-[0-9a-f]{2})?)\]/i.exec(drawing);
  if (orphan !== null)
    fail('EINVAL', `bridge bus range [${orphan[2]}] with no device number (DD.F) before it`, {
      ...location,
      column: orphan.index + orphan[1]!.length + 1,
    });
  if (/-[0-9a-f]{1,2}\.?$/i.test(drawing.trimEnd()) && !/\.[0-7]$/.test(drawing.trimEnd()))
    fail('EINVAL', `"${drawing.trim()}" ends in the middle of a device number (a truncated line?)`, location);
}

/** The name part of a tree line, with the `[vvvv:dddd]` IDs `-tvnn` adds (the last such pair). */
function nameOfLine(
  line: string,
  nameStart: number,
): { name: string | undefined; vendorId: number | undefined; deviceId: number | undefined } {
  const text = line.slice(nameStart).trim();
  if (text === '') return { name: undefined, vendorId: undefined, deviceId: undefined };
  const ids = /\[([0-9a-f]{4}):([0-9a-f]{4})\](?!.*\[[0-9a-f]{4}:[0-9a-f]{4}\])/i.exec(text);
  return {
    name: ids === null ? text : text.slice(0, ids.index).trim() || undefined,
    vendorId: ids === null ? undefined : Number.parseInt(ids[1]!, 16),
    deviceId: ids === null ? undefined : Number.parseInt(ids[2]!, 16),
  };
}

/** Where the drawing ends on a line: the first double space before a device name. */
function firstNameColumn(line: string): number {
  const m = /[0-9a-f]\.[0-7](?:-\[[0-9a-f-]+\])?-*\s{2,}\S/i.exec(line);
  if (m === null) return line.length;
  return m.index + m[0].length - 1;
}

interface VerboseEntry {
  bdf: Bdf;
  line: number;
  /** The header had no `[cccc]`/`[vvvv:dddd]` (lspci without -nn): IDs unknown. */
  withoutNn: boolean;
  /** `Region N:` lines without `[size=]`. */
  barsSizeUnknown: number[];
  name: string | undefined;
  classCode: number | undefined;
  vendorId: number | undefined;
  deviceId: number | undefined;
  bars: PciBar[];
  pcieType: PciePortType | undefined;
  isBridge: boolean;
  secondaryBus: number | undefined;
  subordinateBus: number | undefined;
  acsCap: AcsBits | undefined;
  acsCtl: AcsBits | undefined;
  sawAcs: boolean;
  sawExtended: boolean;
  accessDenied: boolean;
  /** `Capabilities: [xx]` lines of the standard list (offset below 0x100). */
  standardCaps: number;
  /** An Express capability line (whatever its port type). */
  pcie: boolean;
  /** A PCI-X capability line. */
  pcix: boolean;
  /** The function's own Control:/Status: lines, which only -vv and -vvv print. */
  sawControlStatus: boolean;
  /** Cap+ or Cap- on the function's Status: line. */
  statusCapList: boolean | undefined;
  /** Inside a capability's block, where Control:/Status: lines are the capability's own. */
  inCapability: boolean;
  numaNode: number | undefined;
  iommuGroup: number | undefined;
}

const HEADER =
  /^((?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]) (.*?) \[([0-9a-f]{4})\]: (.*?) \[([0-9a-f]{4}):([0-9a-f]{4})\](.*)$/i;
/** The same header without -nn: `BB:DD.F Class name: Vendor device (rev xx)`. */
const HEADER_PLAIN = /^((?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]) ([^[:]+?): (.*)$/i;
/** lspci's class names (pciutils pci.ids) for the classes physr decides on; others stay unknown. */
const CLASS_NAMES: ReadonlyMap<string, number> = new Map([
  ['host bridge', 0x060000],
  ['pci bridge', 0x060400],
  ['vga compatible controller', 0x030000],
  ['3d controller', 0x030200],
  ['display controller', 0x038000],
  ['ethernet controller', 0x020000],
  ['network controller', 0x028000],
  ['infiniband controller', 0x020700],
  ['non-volatile memory controller', 0x010802],
  ['raid bus controller', 0x010400],
  ['sata controller', 0x010600],
  ['serial attached scsi controller', 0x010700],
  ['processing accelerators', 0x120000],
]);
const REGION =
  /^Region (\d): (Memory|I\/O ports) at (\S+)(?: \((32|64)-bit, (prefetchable|non-prefetchable)\))?(.*)$/;
const EXPRESS_TYPES: ReadonlyArray<readonly [string, PciePortType]> = [
  ['Root Port', 'root-port'],
  ['Upstream Port', 'upstream-port'],
  ['Downstream Port', 'downstream-port'],
  ['Legacy Endpoint', 'legacy-endpoint'],
  ['Root Complex Integrated Endpoint', 'rc-integrated-endpoint'],
  ['Root Complex Event Collector', 'rc-event-collector'],
  ['PCI-Express to PCI/PCI-X Bridge', 'pcie-to-pci-bridge'],
  ['PCI/PCI-X to PCI-Express Bridge', 'pci-to-pcie-bridge'],
  ['Endpoint', 'endpoint'],
];
const ACS_FLAGS: ReadonlyArray<readonly [string, keyof AcsBits]> = [
  ['SrcValid', 'sourceValidation'],
  ['TransBlk', 'translationBlocking'],
  ['ReqRedir', 'requestRedirect'],
  ['CmpltRedir', 'completionRedirect'],
  ['UpstreamFwd', 'upstreamForwarding'],
  ['EgressCtrl', 'egressControl'],
  ['DirectTrans', 'directTranslatedP2p'],
];

/** `SrcValid+ TransBlk- ...` → bits; every flag must be present with + or -. */
function parseAcsFlags(text: string, location: SourceLocation): AcsBits {
  const bits: Record<keyof AcsBits, boolean> = {
    sourceValidation: false,
    translationBlocking: false,
    requestRedirect: false,
    completionRedirect: false,
    upstreamForwarding: false,
    egressControl: false,
    directTranslatedP2p: false,
  };
  for (const [flag, key] of ACS_FLAGS) {
    const m = new RegExp(`\\b${flag}([+-])`).exec(text);
    if (m === null) {
      fail(
        'EINVAL',
        `expected ${flag}+ or ${flag}- in "${text.trim()}" (SrcValid TransBlk ReqRedir CmpltRedir UpstreamFwd EgressCtrl DirectTrans)`,
        location,
      );
    }
    bits[key] = m[1] === '+';
  }
  return bits;
}

/** Parses `lspci -nn -vvv` into per-function facts. */
export function parseLspciVerbose(text: string, file = 'lspci -vvv'): VerboseEntry[] {
  const entries: VerboseEntry[] = [];
  let current: VerboseEntry | undefined;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index]!;
    const location: SourceLocation = { file, line: index + 1 };
    if (raw.trim() === '') {
      current = undefined;
      continue;
    }
    if (!/^\s/.test(raw)) {
      const m = HEADER.exec(raw.trim());
      const plain = m === null ? HEADER_PLAIN.exec(raw.trim()) : null;
      if (m === null && plain === null) {
        fail(
          'EINVAL',
          `expected a device header "BB:DD.F class [cccc]: name [vvvv:dddd]", found "${raw.trim()}"`,
          location,
        );
      }
      const head = (m ?? plain)!;
      const address = head[1]!.split(':').length === 2 ? `0000:${head[1]}` : head[1]!;
      const bdf = parseBdf(address, location);
      const earlier = entries.find((e) => e.bdf === bdf);
      if (earlier !== undefined)
        fail(
          'EINVAL',
          `${bdf} appears twice (first on line ${earlier.line}); two captures pasted together?`,
          location,
        );
      const progIf = m === null ? null : /\(prog-if ([0-9a-f]{2})/.exec(m[7]!);
      current = {
        bdf,
        line: index + 1,
        name: (m === null ? plain![3]! : m[4]!).trim(),
        classCode:
          m === null
            ? CLASS_NAMES.get(plain![2]!.trim().toLowerCase())
            : (Number.parseInt(m[3]!, 16) << 8) | (progIf ? Number.parseInt(progIf[1]!, 16) : 0),
        vendorId: m === null ? undefined : Number.parseInt(m[5]!, 16),
        deviceId: m === null ? undefined : Number.parseInt(m[6]!, 16),
        withoutNn: m === null,
        bars: [],
        barsSizeUnknown: [],
        pcieType: undefined,
        isBridge: false,
        secondaryBus: undefined,
        subordinateBus: undefined,
        acsCap: undefined,
        acsCtl: undefined,
        sawAcs: false,
        sawExtended: false,
        accessDenied: false,
        standardCaps: 0,
        pcie: false,
        pcix: false,
        sawControlStatus: false,
        statusCapList: undefined,
        inCapability: false,
        numaNode: undefined,
        iommuGroup: undefined,
      };
      entries.push(current);
      continue;
    }
    if (current === undefined) {
      fail('EINVAL', `expected a device header line before "${raw.trim()}"`, location);
    }
    const line = raw.trim();
    if (line.startsWith('Region ')) {
      const m = REGION.exec(line);
      if (m === null) {
        fail(
          'EINVAL',
          `expected "Region N: Memory at ADDRESS (64-bit, prefetchable) [size=S]", found "${line}"`,
          location,
        );
      }
      const rest = m[6]!;
      const size = /\[size=([0-9]+[KMGT]?)\]/.exec(rest);
      if (m[3]!.startsWith('<') || /\[virtual\]|\[disabled\]/.test(rest)) continue;
      const io = m[2] === 'I/O ports';
      // Without [size=] (lspci cannot size it, e.g. not root) the BAR is kept with its size unknown.
      if (size === null) current.barsSizeUnknown.push(Number.parseInt(m[1]!, 10));
      current.bars.push({
        index: Number.parseInt(m[1]!, 10),
        cpuAddress: parseAddress(`0x${m[3]}`, `Region ${m[1]} address`, location),
        size: size === null ? 0n : parseSize(size[1]!, `Region ${m[1]} size`, location),
        prefetchable: m[5] === 'prefetchable',
        is64: m[4] === '64',
        io,
        ...(size === null ? { sizeUnknown: true } : {}),
      });
    } else if (line.startsWith('Bus: ')) {
      const m = /secondary=([0-9a-f]{2}), subordinate=([0-9a-f]{2})/.exec(line);
      if (m === null)
        fail('EINVAL', `expected "Bus: primary=PP, secondary=SS, subordinate=EE", found "${line}"`, location);
      current.isBridge = true;
      current.secondaryBus = Number.parseInt(m[1]!, 16);
      current.subordinateBus = Number.parseInt(m[2]!, 16);
    } else if (line.startsWith('Capabilities: <access denied>')) {
      current.accessDenied = true;
      current.inCapability = true;
    } else if (line.startsWith('Capabilities: [')) {
      current.inCapability = true;
      const offset = /^Capabilities: \[([0-9a-f]+)/.exec(line);
      const extended = offset !== null && Number.parseInt(offset[1]!, 16) >= 0x100;
      if (extended) current.sawExtended = true;
      else current.standardCaps++;
      // -v prints "Express Endpoint", -vv and up "Express (v2) Endpoint".
      const express = extended ? null : /\] Express (?:\(v\d+\) )?(.*)$/.exec(line);
      if (express !== null) {
        current.pcie = true;
        current.pcieType = EXPRESS_TYPES.find(([text]) => express[1]!.startsWith(text))?.[1];
      }
      if (!extended && /\] PCI-X /.test(line)) current.pcix = true;
      if (line.includes('Access Control Services')) current.sawAcs = true;
    } else if (!current.inCapability && (line.startsWith('Control:') || line.startsWith('Status:'))) {
      current.sawControlStatus = true;
      const cap = /^Status:.*\bCap([+-])/.exec(line);
      if (cap !== null) current.statusCapList = cap[1] === '+';
    } else if (line.startsWith('ACSCap:')) {
      current.acsCap = parseAcsFlags(line.slice(7), location);
    } else if (line.startsWith('ACSCtl:')) {
      current.acsCtl = parseAcsFlags(line.slice(7), location);
    } else if (line.startsWith('NUMA node:')) {
      current.numaNode = Number.parseInt(line.slice(10).trim(), 10);
    } else if (line.startsWith('IOMMU group:')) {
      current.iommuGroup = Number.parseInt(line.slice(12).trim(), 10);
    }
  }
  return entries;
}

/**
 * What the text proves about the function's standard capability list: read when lspci listed it, or
 * when verbose output (Control:/Status: lines) shows none and the Status line does not claim one.
 */
function extendedSpaceFacts(entry: VerboseEntry): ExtendedSpaceFacts {
  const listed = entry.standardCaps > 0 && !entry.accessDenied;
  const noList = entry.standardCaps === 0 && !entry.accessDenied && entry.statusCapList !== true;
  return {
    deviceClass: entry.classCode === undefined ? undefined : entry.classCode >> 8,
    capabilitiesRead: listed || (noList && entry.sawControlStatus),
    pcie: entry.pcie,
    pcix: entry.pcix,
    // lspci prints 266MHz/533MHz only for PCI-X non-bridges; with the capability listed it is not needed.
    pcixMode2: undefined,
  };
}

function acsOf(entry: VerboseEntry, file: string): AcsState {
  // A grep-style fragment (`lspci -vvv | grep -E '^[0-9a-f]|ACS'`) has the ACS lines without the
  // capability header; ACSCtl: alone gives the control, and the capability is taken as every bit
  // (so isolation is never granted on a guess: pci_acs_flags_enabled then needs all flags on).
  if (!entry.sawAcs && entry.acsCtl !== undefined) {
    return {
      kind: 'known',
      capability: entry.acsCap ?? acsBitsFromRegister(0x7f),
      control: entry.acsCtl,
    };
  }
  if (entry.sawAcs) {
    if (entry.acsCap === undefined || entry.acsCtl === undefined) {
      fail('EINVAL', `${entry.bdf}: Access Control Services without both ACSCap: and ACSCtl: lines`, {
        file,
        line: entry.line,
      });
    }
    return { kind: 'known', capability: entry.acsCap, control: entry.acsCtl };
  }
  if (entry.accessDenied)
    return { kind: 'unknown', why: 'lspci: capabilities <access denied> (run as root)' };
  // A conventional function has no extended space, so no ACS (pci_cfg_space_size, drivers/pci/probe.c).
  if (lacksExtendedSpace(extendedSpaceFacts(entry))) return { kind: 'absent' };
  // lspci (ls-caps.c) walks the extended list after an Express or PCI-X capability; with the
  // capabilities readable it had the config space the kernel searches for ACS, and found none.
  if (entry.sawExtended || (entry.standardCaps > 0 && (entry.pcie || entry.pcix))) return { kind: 'absent' };
  if (entry.standardCaps > 0)
    return { kind: 'unknown', why: 'lspci shows no extended capabilities for a host bridge without Express' };
  if (entry.statusCapList === true)
    return { kind: 'unknown', why: 'lspci: Status says Cap+ but no Capabilities lines follow (truncated?)' };
  if (entry.sawControlStatus)
    return { kind: 'unknown', why: 'lspci: a host bridge without capabilities; extended space not shown' };
  return { kind: 'unknown', why: 'lspci shows no capabilities or Status line (not -vvv output)' };
}

/**
 * The PCIe port type of a bridge known only from `lspci -t` (which does not print it), from the
 * tree's shape: on a root bus a root port; below a root or downstream port a switch's upstream port;
 * below an upstream port a downstream port. Noted as inferred.
 */
function inferPortTypes(tree: readonly TreeEntry[]): Map<Bdf, PciePortType> {
  const byBdf = new Map(tree.map((t) => [t.bdf, t]));
  const types = new Map<Bdf, PciePortType>();
  const typeOf = (t: TreeEntry, depth: number): PciePortType | undefined => {
    if (t.secondaryBus === undefined || depth > 64) return undefined;
    const known = types.get(t.bdf);
    if (known !== undefined) return known;
    const parent = t.parent === undefined ? undefined : byBdf.get(t.parent);
    let type: PciePortType;
    if (parent === undefined) type = 'root-port';
    else {
      const above = typeOf(parent, depth + 1);
      type = above === 'upstream-port' ? 'downstream-port' : 'upstream-port';
    }
    types.set(t.bdf, type);
    return type;
  };
  for (const t of tree) typeOf(t, 0);
  return types;
}

/**
 * Imports a topology from lspci text: the tree (`-t`, `-tv` or `-tvnn`), the verbose listing
 * (`-nn -vvv`, or `-vvv` without IDs), or both. What neither shows is unknown and noted.
 */
export function importLspci(input: LspciInput): TopologyImport {
  if (input.tree === undefined && input.verbose === undefined)
    fail('EINVAL', 'give lspci -tv output, lspci -nn -vvv output, or both');
  const treeFile = input.treeFile ?? 'lspci -tv';
  const verboseFile = input.verboseFile ?? 'lspci -vvv';
  const tree = input.tree === undefined ? undefined : parseLspciTree(input.tree, treeFile);
  const verboseList = input.verbose === undefined ? [] : parseLspciVerbose(input.verbose, verboseFile);
  const verbose = new Map(verboseList.map((e) => [e.bdf, e]));
  const notes: ImportNote[] = [];
  if (tree !== undefined) {
    const inTree = new Set(tree.map((t) => t.bdf));
    for (const [bdf, entry] of verbose) {
      if (!inTree.has(bdf)) {
        fail(
          'EINVAL',
          `${bdf} is in the -vvv output but not in the -tv tree (captures from different machines?)`,
          {
            file: verboseFile,
            line: entry.line,
          },
        );
      }
    }
  }
  if (verboseList.some((v) => v.withoutNn))
    notes.push({
      bdf: undefined,
      what: 'ids',
      why: `${verboseFile} has no [vendor:device] IDs (lspci without -nn); the host-bridge allowlist needs them: rerun lspci with -nn`,
    });
  const bdfs = tree?.map((t) => t.bdf) ?? verboseList.map((v) => v.bdf);
  const treeOf = new Map((tree ?? []).map((t) => [t.bdf, t]));
  const inferred = tree === undefined ? new Map<Bdf, PciePortType>() : inferPortTypes(tree);
  // Functions of one slot: more than one present means a multi-function device.
  const slotCounts = new Map<string, number>();
  for (const bdf of bdfs) slotCounts.set(bdf.slice(0, -2), (slotCounts.get(bdf.slice(0, -2)) ?? 0) + 1);
  const facts: FunctionFacts[] = [];
  for (const bdf of bdfs) {
    const t = treeOf.get(bdf);
    const v = verbose.get(bdf);
    if (v === undefined)
      notes.push({
        bdf,
        what: 'lspci',
        why: `in the tree only: ${t?.vendorId === undefined ? 'IDs, ' : ''}class, BARs and ACS unknown`,
      });
    const acs: AcsState =
      v === undefined ? { kind: 'unknown', why: 'not in the -vvv output' } : acsOf(v, verboseFile);
    if (acs.kind === 'unknown') notes.push({ bdf, what: 'acs', why: acs.why });
    for (const index of v?.barsSizeUnknown ?? [])
      notes.push({
        bdf,
        what: 'bars',
        why: `Region ${index}: lspci printed no [size=] (run as root): size unknown`,
      });
    const isBridge = t?.secondaryBus !== undefined || v?.isBridge === true;
    let pcieType = v?.pcieType;
    if (v === undefined && inferred.has(bdf)) {
      pcieType = inferred.get(bdf);
      notes.push({
        bdf,
        what: 'kind',
        why: `a bridge in the tree only: taken as a PCIe ${pcieType} from where it sits`,
      });
    }
    facts.push({
      bdf,
      kind: functionKind(v?.classCode, isBridge ? 1 : v === undefined ? undefined : 0, pcieType),
      vendorId: v?.vendorId ?? t?.vendorId,
      deviceId: v?.deviceId ?? t?.deviceId,
      classCode: v?.classCode,
      name: v?.name ?? t?.name,
      bars: v?.bars ?? [],
      acs,
      multifunction: (slotCounts.get(bdf.slice(0, -2)) ?? 0) > 1 ? true : undefined,
      secondaryBus: v?.secondaryBus ?? t?.secondaryBus,
      subordinateBus: v?.subordinateBus ?? t?.subordinateBus,
      numaNode: v?.numaNode,
      reportedIommuGroup: v?.iommuGroup,
    });
  }
  let parents: Map<Bdf, Bdf | undefined>;
  const rootHost = new Map<Bdf, string>();
  if (tree !== undefined) {
    parents = new Map(tree.map((t) => [t.bdf, t.parent]));
    for (const t of tree) if (t.parent === undefined) rootHost.set(t.bdf, t.host);
  } else {
    // No tree: each function's bridge from the bridges' bus numbers (as hwloc does).
    parents = parentsFromBusNumbers(facts);
    notes.push({
      bdf: undefined,
      what: 'hierarchy',
      why: 'no lspci -t tree: bridges placed by their bus numbers',
    });
  }
  const busOffsets = new Map<string, bigint>();
  const topology = assembleTopology(facts, parents, rootHost, UNKNOWN_CPU, busOffsets, notes);
  notes.push({ bdf: undefined, what: 'cpu', why: 'lspci text does not show the CPU' });
  const files = [
    input.tree === undefined ? undefined : treeFile,
    input.verbose === undefined ? undefined : verboseFile,
  ]
    .filter((f) => f !== undefined)
    .join(', ');
  return { topology, source: `lspci text (${files})`, notes };
}

/**
 * Import of /proc/iomem: the kernel's iomem_resource tree as text (kernel/resource.c r_show prints
 * each resource as `start-end : name`, inclusive end, indented two spaces per nesting level). We keep
 * the raw tree (so the PCI importer can match BAR entries, named by BDF, to functions) and derive a
 * memory map of leaves: System RAM, Persistent Memory, BARs, and everything else as reserved.
 *
 * Read by a non-root user, every address prints as zero (r_show hides them without
 * CAP_SYS_ADMIN); that is reported as "addresses hidden", never taken as data.
 */
import { fail, formatHex, PhysrError, readInputText, type SourceLocation, U64_MAX } from '../core/index.ts';
import { MemoryMap, type MemoryRegionKind } from './memory-map.ts';
import type { Bdf } from './pci-types.ts';

export interface IomemEntry {
  readonly start: bigint;
  /** Inclusive, as printed. */
  readonly last: bigint;
  readonly name: string;
  /** Nesting level (0 = top). */
  readonly depth: number;
  /** 1-based line in the source text. */
  readonly line: number;
  readonly children: IomemEntry[];
}

/** A BAR as /proc/iomem shows it: an entry named by the function's BDF, and the drivers under it. */
export interface IomemBar {
  readonly bdf: Bdf;
  readonly start: bigint;
  readonly last: bigint;
  readonly line: number;
  /** Names of the entries nested in the BAR (the driver's request_mem_region names). */
  readonly claimedBy: readonly string[];
}

/** A `PCI Bus DDDD:BB` window: a host bridge (top level) or bridge aperture (nested). */
export interface IomemPciWindow {
  readonly segment: number;
  readonly bus: number;
  readonly start: bigint;
  readonly last: bigint;
  readonly line: number;
  /** True for a host bridge window (its parent is not a PCI device). */
  readonly hostBridge: boolean;
}

export interface IomemImport {
  /** File name used in locations (e.g. `/proc/iomem`). */
  readonly source: string;
  readonly tree: readonly IomemEntry[];
  /** The derived map; empty when addresses are hidden. */
  readonly map: MemoryMap;
  readonly bars: readonly IomemBar[];
  readonly pciWindows: readonly IomemPciWindow[];
  /** Every address printed as zero: read without root. */
  readonly addressesHidden: boolean;
  /** What the capture did not tell, for the CLI to print. */
  readonly notes: readonly string[];
}

export const IOMEM_HIDDEN_NOTE =
  'addresses hidden (run as root): /proc/iomem shows zeros to non-root readers';

const LINE_PATTERN = /^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$/;
const BDF_NAME = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;
const PCI_BUS_NAME = /^PCI Bus ([0-9a-f]{4,8}):([0-9a-f]{2})$/;

interface RawLine {
  readonly indent: number;
  readonly start: bigint;
  readonly last: bigint;
  readonly name: string;
  readonly line: number;
}

function parseHex(text: string, where: SourceLocation, what: string): bigint {
  if (text.length > 16) fail('EINVAL', `${what} 0x${text} has more than 16 hex digits`, where);
  const value = BigInt(`0x${text}`);
  if (value > U64_MAX) fail('EINVAL', `${what} 0x${text} is outside 0..2^64-1`, where);
  return value;
}

function parseLines(text: string, file: string): RawLine[] {
  const out: RawLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const line = i + 1;
    if (raw.trim() === '') continue;
    const match = LINE_PATTERN.exec(raw);
    if (match === null) {
      const column = raw.length - raw.trimStart().length + 1;
      fail('EINVAL', `expected "START-END : NAME" (hex addresses, inclusive end), got "${raw.trim()}"`, {
        file,
        line,
        column,
      });
    }
    const indent = match[1]!.length;
    if (indent % 2 !== 0) {
      fail('EINVAL', `indentation of ${indent} spaces is not a multiple of 2`, { file, line, column: 1 });
    }
    const startColumn = indent + 1;
    const start = parseHex(match[2]!, { file, line, column: startColumn, field: 'start' }, 'start');
    const endColumn = startColumn + match[2]!.length + 1;
    const last = parseHex(match[3]!, { file, line, column: endColumn, field: 'end' }, 'end');
    out.push({ indent, start, last, name: match[4]!, line });
  }
  return out;
}

/** Builds the tree from indentation; with `strict`, checks ranges nest and siblings do not overlap. */
function buildTree(lines: readonly RawLine[], file: string, strict: boolean): IomemEntry[] {
  const roots: IomemEntry[] = [];
  const stack: IomemEntry[] = [];
  for (const raw of lines) {
    const depth = raw.indent / 2;
    const where = { file, line: raw.line };
    if (depth > stack.length) {
      fail(
        'EINVAL',
        `entry is indented to level ${depth} but the previous entry is at level ${stack.length - 1}; expected at most level ${stack.length}`,
        { ...where, column: 1 },
      );
    }
    stack.length = depth;
    const parent = stack[depth - 1];
    const siblings = parent === undefined ? roots : parent.children;
    if (strict) {
      if (raw.last < raw.start) {
        fail('EINVAL', `range ${formatHex(raw.start)}-${formatHex(raw.last)} ends before it starts`, where);
      }
      if (parent !== undefined && (raw.start < parent.start || raw.last > parent.last)) {
        fail(
          'EINVAL',
          `range ${formatHex(raw.start)}-${formatHex(raw.last)} is not inside its parent ` +
            `${formatHex(parent.start)}-${formatHex(parent.last)} "${parent.name}" (line ${parent.line})`,
          where,
        );
      }
      const previous = siblings[siblings.length - 1];
      if (previous !== undefined && raw.start <= previous.last) {
        fail(
          'EINVAL',
          `range ${formatHex(raw.start)}-${formatHex(raw.last)} overlaps or precedes its sibling ` +
            `${formatHex(previous.start)}-${formatHex(previous.last)} "${previous.name}" (line ${previous.line})`,
          where,
        );
      }
    }
    const entry: IomemEntry = {
      start: raw.start,
      last: raw.last,
      name: raw.name,
      depth,
      line: raw.line,
      children: [],
    };
    siblings.push(entry);
    stack.push(entry);
  }
  return roots;
}

type EntryClass = 'ram' | 'pmem' | 'bar' | 'window' | 'reserved';

/** What an entry is, from its name (the names kernel/resource.c, e820 and drivers/pci use). */
export function classifyIomemEntry(entry: IomemEntry): EntryClass {
  const name = entry.name;
  if (name.startsWith('System RAM')) return 'ram';
  if (name.startsWith('Persistent Memory')) return 'pmem';
  if (PCI_BUS_NAME.test(name)) return 'window';
  if (BDF_NAME.test(name)) {
    // A bridge's aperture is named by the bridge's BDF and holds the secondary bus window.
    return entry.children.some((c) => PCI_BUS_NAME.test(c.name)) ? 'window' : 'bar';
  }
  return 'reserved';
}

function hasDescendant(entry: IomemEntry, kinds: readonly EntryClass[]): boolean {
  return entry.children.some((c) => kinds.includes(classifyIomemEntry(c)) || hasDescendant(c, kinds));
}

interface Collected {
  readonly map: MemoryMap;
  readonly bars: IomemBar[];
  readonly windows: IomemPciWindow[];
}

function addRegion(
  out: Collected,
  kind: MemoryRegionKind,
  start: bigint,
  last: bigint,
  name: string,
  file: string,
  line: number,
): void {
  try {
    if (kind === 'pmem') out.map.add({ kind, start, last, name, structPages: false });
    else if (kind === 'ram') out.map.add({ kind, start, last, name });
    else out.map.add({ kind: 'reserved', start, last, name });
  } catch (error) {
    if (error instanceof PhysrError) throw error.at({ file, line });
    throw error;
  }
}

/** The parts of `entry` not covered by its children get `kind`; the children are walked. */
function carve(
  out: Collected,
  entry: IomemEntry,
  kind: MemoryRegionKind,
  file: string,
  insideDevice: boolean,
): void {
  let cursor = entry.start;
  for (const child of entry.children) {
    if (child.start > cursor) addRegion(out, kind, cursor, child.start - 1n, entry.name, file, entry.line);
    walk(out, child, file, insideDevice);
    cursor = child.last + 1n;
  }
  if (cursor <= entry.last && cursor <= U64_MAX)
    addRegion(out, kind, cursor, entry.last, entry.name, file, entry.line);
}

function walk(out: Collected, entry: IomemEntry, file: string, insideDevice: boolean): void {
  const cls = classifyIomemEntry(entry);
  switch (cls) {
    case 'ram':
      // Kernel code/data and "reserved" under RAM still have struct pages: the whole entry is RAM.
      addRegion(out, 'ram', entry.start, entry.last, entry.name, file, entry.line);
      return;
    case 'bar':
      try {
        out.map.add({
          kind: 'mmio',
          start: entry.start,
          last: entry.last,
          name: entry.name,
          bdf: entry.name,
        });
      } catch (error) {
        if (error instanceof PhysrError) throw error.at({ file, line: entry.line });
        throw error;
      }
      out.bars.push({
        bdf: entry.name,
        start: entry.start,
        last: entry.last,
        line: entry.line,
        claimedBy: entry.children.map((c) => c.name),
      });
      return;
    case 'window': {
      const bus = PCI_BUS_NAME.exec(entry.name);
      if (bus !== null) {
        out.windows.push({
          segment: Number.parseInt(bus[1]!, 16),
          bus: Number.parseInt(bus[2]!, 16),
          start: entry.start,
          last: entry.last,
          line: entry.line,
          hostBridge: !insideDevice,
        });
      }
      // Unclaimed window space is unassigned bus address space: a hole, not a region.
      // Anything nested in a window is behind the host bridge: nested `PCI Bus` windows are bridges'.
      for (const child of entry.children) walk(out, child, file, true);
      return;
    }
    case 'pmem':
      if (hasDescendant(entry, ['ram', 'bar'])) carve(out, entry, 'pmem', file, insideDevice);
      else addRegion(out, 'pmem', entry.start, entry.last, entry.name, file, entry.line);
      return;
    case 'reserved':
      if (hasDescendant(entry, ['ram', 'pmem', 'bar'])) carve(out, entry, 'reserved', file, insideDevice);
      else addRegion(out, 'reserved', entry.start, entry.last, entry.name, file, entry.line);
      return;
  }
}

/**
 * Parses /proc/iomem text. Malformed or truncated lines are EINVAL with file, line and what was
 * expected; entries that do not nest inside their parent, or overlap a sibling, are EINVAL too.
 */
export function parseIomem(text: string, file = '/proc/iomem'): IomemImport {
  const lines = parseLines(text, file);
  if (lines.length === 0)
    fail('EINVAL', 'no entries: expected lines of "START-END : NAME"', { file, line: 1 });
  const hidden = lines.every((l) => l.start === 0n && l.last === 0n);
  const tree = buildTree(lines, file, !hidden);
  const out: Collected = { map: new MemoryMap(), bars: [], windows: [] };
  const notes: string[] = [];
  if (hidden) {
    notes.push(IOMEM_HIDDEN_NOTE);
    return { source: file, tree, map: out.map, bars: [], pciWindows: [], addressesHidden: true, notes };
  }
  for (const entry of tree) walk(out, entry, file, false);
  if (out.map.byKind('ram').length > 0)
    notes.push('NUMA node of System RAM unknown: /proc/iomem does not say');
  if (out.bars.length > 0) {
    notes.push(
      'BAR index, prefetchable and 64-bit unknown: /proc/iomem names only the function (match sysfs resource)',
    );
  }
  if (out.map.byKind('pmem').length > 0) {
    notes.push('whether Persistent Memory has struct pages (ZONE_DEVICE) is unknown: assumed none');
  }
  return {
    source: file,
    tree,
    map: out.map,
    bars: out.bars,
    pciWindows: out.windows,
    addressesHidden: false,
    notes,
  };
}

/** Reads and parses an iomem file (default the live /proc/iomem); ENOENT/EACCES name the file. */
export function readIomem(path = '/proc/iomem'): IomemImport {
  return parseIomem(readInputText(path, 'iomem'), path);
}

/** Every entry of the tree, depth first, in file order. */
export function flattenIomem(tree: readonly IomemEntry[]): IomemEntry[] {
  const out: IomemEntry[] = [];
  const visit = (entries: readonly IomemEntry[]): void => {
    for (const entry of entries) {
      out.push(entry);
      visit(entry.children);
    }
  };
  visit(tree);
  return out;
}

/** The tree back as /proc/iomem text (r_show: at least 8 hex digits, two spaces per level). */
export function formatIomem(tree: readonly IomemEntry[]): string {
  const hex = (value: bigint): string => value.toString(16).padStart(8, '0');
  return flattenIomem(tree)
    .map((e) => `${'  '.repeat(e.depth)}${hex(e.start)}-${hex(e.last)} : ${e.name}\n`)
    .join('');
}

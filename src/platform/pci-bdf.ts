/**
 * PCI function addresses: `DDDD:BB:DD.F` as sysfs names devices (pci_name() in the kernel), with the
 * 16-bit requester id (bus << 8 | devfn) that p2pdma keys its map-type cache by.
 */
import { fail, type SourceLocation } from '../core/index.ts';
import type { Bdf } from './pci-types.ts';

export interface BdfParts {
  readonly segment: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

/** Canonical lower-case `DDDD:BB:DD.F`; refuses out-of-range parts (EINVAL). */
export function formatBdf(parts: BdfParts): Bdf {
  const { segment, bus, device, function: fn } = parts;
  // Domains may exceed 16 bits (VMD and Hyper-V use 32-bit domains: `10000:00:00.0`).
  if (!Number.isInteger(segment) || segment < 0 || segment > 0xffff_ffff)
    fail('EINVAL', `PCI domain ${segment} is outside 0..0xffffffff`);
  if (!Number.isInteger(bus) || bus < 0 || bus > 0xff) fail('EINVAL', `PCI bus ${bus} is outside 0..0xff`);
  if (!Number.isInteger(device) || device < 0 || device > 0x1f)
    fail('EINVAL', `PCI device ${device} is outside 0..0x1f`);
  if (!Number.isInteger(fn) || fn < 0 || fn > 7) fail('EINVAL', `PCI function ${fn} is outside 0..7`);
  return `${hex(segment, 4)}:${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
}

const BDF_PATTERN = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/** Parses `DDDD:BB:DD.F` or `BB:DD.F` (segment 0), as lspci and sysfs print them. */
export function parseBdfParts(text: string, location?: SourceLocation): BdfParts {
  const match = BDF_PATTERN.exec(text.trim());
  if (match === null)
    fail('EINVAL', `'${text}' is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F)`, location);
  const device = Number.parseInt(match[3]!, 16);
  if (device > 0x1f) fail('EINVAL', `'${text}': PCI device number ${device} is above 0x1f`, location);
  return {
    segment: match[1] === undefined ? 0 : Number.parseInt(match[1], 16),
    bus: Number.parseInt(match[2]!, 16),
    device,
    function: Number.parseInt(match[4]!, 10),
  };
}

/** The parts of a PCI address, or undefined when `text` is not one (for filtering directory names). */
export function tryParseBdfParts(text: string): BdfParts | undefined {
  const match = BDF_PATTERN.exec(text.trim());
  if (match === null || Number.parseInt(match[3]!, 16) > 0x1f) return undefined;
  return parseBdfParts(text);
}

/** Orders BDFs numerically (domain, bus, device, function) as lspci lists them. */
export function compareBdf(a: Bdf, b: Bdf): number {
  const x = tryParseBdfParts(a);
  const y = tryParseBdfParts(b);
  if (x === undefined || y === undefined) return a < b ? -1 : a > b ? 1 : 0;
  return x.segment - y.segment || x.bus - y.bus || x.device - y.device || x.function - y.function;
}

/** Parses and canonicalises a PCI address (`01:00.0` becomes `0000:01:00.0`). */
export function parseBdf(text: string, location?: SourceLocation): Bdf {
  return formatBdf(parseBdfParts(text, location));
}

/** devfn = device << 3 | function (PCI_DEVFN). */
export function devfnOf(parts: BdfParts): number {
  return (parts.device << 3) | parts.function;
}

/** The same-slot key `DDDD:BB:DD` (functions of one multi-function device share it; PCI_SLOT). */
export function slotOf(bdf: Bdf): string {
  const dot = bdf.lastIndexOf('.');
  return dot < 0 ? bdf : bdf.slice(0, dot);
}

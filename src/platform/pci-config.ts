/**
 * Decoding of a PCI function's configuration space as sysfs exposes it in the `config` file:
 * 64 bytes (standard header only), 256 bytes (conventional space with the capability list) or
 * 4096 bytes (PCIe extended space). Register offsets follow include/uapi/linux/pci_regs.h.
 * What the bytes do not contain is `undefined`, never guessed.
 */

import { fail, type SourceLocation } from '../core/index.ts';
import { acsBitsFromRegister, acsBitsToRegister } from './pci-acs.ts';
import type { AcsBits, AcsState, PciFunctionKind } from './pci-types.ts';

/** Config space sizes sysfs can hand out (drivers/pci/pci-sysfs.c: 64 unprivileged, 256, 4096). */
export const CONFIG_HEADER_SIZE = 64;
export const CONFIG_SPACE_SIZE = 256;
export const CONFIG_EXP_SPACE_SIZE = 4096;

const PCI_VENDOR_ID = 0x00;
const PCI_DEVICE_ID = 0x02;
const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_CLASS_REVISION = 0x08;
const PCI_HEADER_TYPE = 0x0e;
const PCI_HEADER_TYPE_MFD = 0x80;
const PCI_BASE_ADDRESS_0 = 0x10;
const PCI_PRIMARY_BUS = 0x18;
const PCI_SECONDARY_BUS = 0x19;
const PCI_SUBORDINATE_BUS = 0x1a;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_EXP = 0x10;
const PCI_CAP_ID_PCIX = 0x07;
const PCI_X_STATUS = 0x04;
/** PCI-X Mode 2 (266/533 MHz) devices have the 4096-byte space too (PCI_X_STATUS_266MHZ | _533MHZ). */
const PCI_X_STATUS_MODE2 = 0xc000_0000;
/** dev->class >> 8 of a host bridge (PCI_CLASS_BRIDGE_HOST in include/linux/pci_ids.h). */
const PCI_CLASS_BRIDGE_HOST = 0x0600;
const PCI_EXP_FLAGS = 0x02;
const PCI_EXT_CAP_ID_ACS = 0x000d;
const PCI_ACS_CAP = 0x04;
const PCI_ACS_CTRL = 0x06;

/** PCIe Device/Port Type (PCI_EXP_TYPE_* in pci_regs.h). */
export type PciePortType =
  | 'endpoint'
  | 'legacy-endpoint'
  | 'root-port'
  | 'upstream-port'
  | 'downstream-port'
  | 'pcie-to-pci-bridge'
  | 'pci-to-pcie-bridge'
  | 'rc-integrated-endpoint'
  | 'rc-event-collector';

const PORT_TYPES: ReadonlyMap<number, PciePortType> = new Map([
  [0x0, 'endpoint'],
  [0x1, 'legacy-endpoint'],
  [0x4, 'root-port'],
  [0x5, 'upstream-port'],
  [0x6, 'downstream-port'],
  [0x7, 'pcie-to-pci-bridge'],
  [0x8, 'pci-to-pcie-bridge'],
  [0x9, 'rc-integrated-endpoint'],
  [0xa, 'rc-event-collector'],
]);

/** A BAR as its register reads: a PCI bus address; its size needs sizing writes, so config alone lacks it. */
export interface ConfigBar {
  readonly index: number;
  readonly busAddress: bigint;
  readonly is64: boolean;
  readonly prefetchable: boolean;
  readonly io: boolean;
}

export interface PciCapability {
  readonly id: number;
  readonly offset: number;
}

export interface DecodedConfig {
  readonly length: number;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  /** Header layout: 0 normal device, 1 PCI-to-PCI bridge, 2 CardBus bridge. */
  readonly headerType: number;
  readonly multifunction: boolean;
  readonly primaryBus: number | undefined;
  readonly secondaryBus: number | undefined;
  readonly subordinateBus: number | undefined;
  readonly bars: readonly ConfigBar[];
  /** Standard capabilities; undefined when the list points past the bytes we have. */
  readonly capabilities: readonly PciCapability[] | undefined;
  /** PCIe port type from the Express capability; undefined when unknown or not PCIe. */
  readonly pcieType: PciePortType | undefined;
  /** Whether the function has a PCI Express capability; undefined when the list is not readable. */
  readonly isPcie: boolean | undefined;
  readonly extendedCapabilities: readonly PciCapability[] | undefined;
  readonly acs: AcsState;
}

function u8(bytes: Uint8Array, offset: number): number {
  return bytes[offset] ?? 0;
}
function u16(bytes: Uint8Array, offset: number): number {
  return u8(bytes, offset) | (u8(bytes, offset + 1) << 8);
}
function u32(bytes: Uint8Array, offset: number): number {
  return (u16(bytes, offset) | (u16(bytes, offset + 2) << 16)) >>> 0;
}

/** BAR registers of a type 0 (six) or type 1 (two) header (pci_read_bases in drivers/pci/probe.c). */
function decodeBars(bytes: Uint8Array, count: number): ConfigBar[] {
  const bars: ConfigBar[] = [];
  for (let index = 0; index < count; index++) {
    const low = u32(bytes, PCI_BASE_ADDRESS_0 + index * 4);
    if (low & 0x1) {
      const address = BigInt((low & 0xffff_fffc) >>> 0);
      if (address !== 0n)
        bars.push({ index, busAddress: address, is64: false, prefetchable: false, io: true });
      continue;
    }
    const type = (low >> 1) & 0x3;
    const prefetchable = (low & 0x8) !== 0;
    let address = BigInt((low & 0xffff_fff0) >>> 0);
    const is64 = type === 0x2;
    if (is64 && index + 1 < count) {
      address |= BigInt(u32(bytes, PCI_BASE_ADDRESS_0 + (index + 1) * 4)) << 32n;
    }
    if (address !== 0n) bars.push({ index, busAddress: address, is64, prefetchable, io: false });
    if (is64) index++;
  }
  return bars;
}

/** Walks the standard capability list; undefined when a pointer leaves the bytes we have. */
function walkCapabilities(bytes: Uint8Array): PciCapability[] | undefined {
  if ((u16(bytes, PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return [];
  const caps: PciCapability[] = [];
  let pointer = u8(bytes, PCI_CAPABILITY_LIST) & 0xfc;
  // 48 is the kernel's loop bound for a 256-byte space (PCI_FIND_CAP_TTL in drivers/pci/pci.c).
  for (let ttl = 48; pointer >= 0x40 && ttl > 0; ttl--) {
    if (pointer + 2 > bytes.length) return undefined;
    const id = u8(bytes, pointer);
    if (id === 0xff) break;
    caps.push({ id, offset: pointer });
    pointer = u8(bytes, pointer + 1) & 0xfc;
  }
  return caps;
}

/** Walks the extended capability list from 0x100 (pci_find_next_ext_capability). */
function walkExtendedCapabilities(bytes: Uint8Array): PciCapability[] {
  const caps: PciCapability[] = [];
  let offset = CONFIG_SPACE_SIZE;
  const seen = new Set<number>();
  while (offset >= CONFIG_SPACE_SIZE && offset + 4 <= bytes.length && !seen.has(offset)) {
    seen.add(offset);
    const header = u32(bytes, offset);
    // An all-zero or all-ones header means there are no extended capabilities.
    if (header === 0 || header === 0xffff_ffff) break;
    caps.push({ id: header & 0xffff, offset });
    offset = (header >>> 20) & 0xffc;
  }
  return caps;
}

/**
 * Decodes a config space dump. Lengths other than 64, 256 or 4096 mean a truncated capture and
 * are refused with the length found.
 */
export function decodeConfig(bytes: Uint8Array, location?: SourceLocation): DecodedConfig {
  const length = bytes.length;
  if (length !== CONFIG_HEADER_SIZE && length !== CONFIG_SPACE_SIZE && length !== CONFIG_EXP_SPACE_SIZE) {
    fail('EINVAL', `config has ${length} bytes; expected 64, 256 or 4096 (truncated?)`, location);
  }
  const vendorId = u16(bytes, PCI_VENDOR_ID);
  if (vendorId === 0xffff || vendorId === 0) {
    fail('EINVAL', `config vendor ID is 0x${vendorId.toString(16)}; expected a present function`, location);
  }
  const header = u8(bytes, PCI_HEADER_TYPE);
  const headerType = header & 0x7f;
  const isBridge = headerType === 1;
  const capabilities = walkCapabilities(bytes);
  const express = capabilities?.find((cap) => cap.id === PCI_CAP_ID_EXP);
  let pcieType: PciePortType | undefined;
  if (express !== undefined && express.offset + PCI_EXP_FLAGS + 2 <= length) {
    pcieType = PORT_TYPES.get((u16(bytes, express.offset + PCI_EXP_FLAGS) >> 4) & 0xf);
  }
  const extendedCapabilities = length === CONFIG_EXP_SPACE_SIZE ? walkExtendedCapabilities(bytes) : undefined;
  return {
    length,
    vendorId,
    deviceId: u16(bytes, PCI_DEVICE_ID),
    classCode: u32(bytes, PCI_CLASS_REVISION) >>> 8,
    headerType,
    multifunction: (header & PCI_HEADER_TYPE_MFD) !== 0,
    primaryBus: isBridge ? u8(bytes, PCI_PRIMARY_BUS) : undefined,
    secondaryBus: isBridge ? u8(bytes, PCI_SECONDARY_BUS) : undefined,
    subordinateBus: isBridge ? u8(bytes, PCI_SUBORDINATE_BUS) : undefined,
    bars: decodeBars(bytes, headerType === 0 ? 6 : headerType === 1 ? 2 : 0),
    capabilities,
    pcieType,
    isPcie: capabilities === undefined ? undefined : express !== undefined,
    extendedCapabilities,
    acs: decodeAcs(bytes, extendedCapabilities, capabilities, u32(bytes, PCI_CLASS_REVISION) >>> 16),
  };
}

/**
 * What pci_cfg_space_size (drivers/pci/probe.c) looks at to decide whether a function can have the
 * 4096-byte extended config space. Shared by the sysfs and lspci importers.
 */
export interface ExtendedSpaceFacts {
  /** Base class and sub-class (dev->class >> 8); undefined when unknown. */
  readonly deviceClass: number | undefined;
  /** Whether the standard capability list was read (a function without one counts as read). */
  readonly capabilitiesRead: boolean;
  /** A PCI Express capability is in the list. */
  readonly pcie: boolean;
  /** A PCI-X capability is in the list. */
  readonly pcix: boolean;
  /** The PCI-X Status register shows 266 or 533 MHz (Mode 2); undefined when not read. */
  readonly pcixMode2: boolean | undefined;
}

/**
 * Whether the function certainly has no extended config space, by pci_cfg_space_size: only a host
 * bridge, a PCIe function or a PCI-X Mode 2 function has it, so a conventional function's ACS
 * capability (an extended one) cannot exist. False whenever the facts do not settle it.
 */
export function lacksExtendedSpace(facts: ExtendedSpaceFacts): boolean {
  if (!facts.capabilitiesRead || facts.deviceClass === undefined) return false;
  if (facts.deviceClass === PCI_CLASS_BRIDGE_HOST || facts.pcie) return false;
  if (!facts.pcix) return true;
  return facts.pcixMode2 === false;
}

function extendedSpaceFacts(
  bytes: Uint8Array,
  capabilities: readonly PciCapability[] | undefined,
  deviceClass: number,
): ExtendedSpaceFacts {
  const pcix = capabilities?.find((cap) => cap.id === PCI_CAP_ID_PCIX);
  const pcixReadable = pcix !== undefined && pcix.offset + PCI_X_STATUS + 4 <= bytes.length;
  return {
    deviceClass,
    capabilitiesRead: capabilities !== undefined,
    pcie: capabilities?.some((cap) => cap.id === PCI_CAP_ID_EXP) === true,
    pcix: pcix !== undefined,
    pcixMode2: pcixReadable ? (u32(bytes, pcix.offset + PCI_X_STATUS) & PCI_X_STATUS_MODE2) !== 0 : undefined,
  };
}

function decodeAcs(
  bytes: Uint8Array,
  extended: readonly PciCapability[] | undefined,
  capabilities: readonly PciCapability[] | undefined,
  deviceClass: number,
): AcsState {
  if (extended === undefined) {
    // A 256-byte dump of a conventional function is its whole config space: ACS is certainly absent.
    if (lacksExtendedSpace(extendedSpaceFacts(bytes, capabilities, deviceClass))) return { kind: 'absent' };
    return { kind: 'unknown', why: `config has ${bytes.length} bytes; extended capabilities absent` };
  }
  const acs = extended.find((cap) => cap.id === PCI_EXT_CAP_ID_ACS);
  if (acs === undefined) return { kind: 'absent' };
  return {
    kind: 'known',
    capability: acsBitsFromRegister(u16(bytes, acs.offset + PCI_ACS_CAP)),
    control: acsBitsFromRegister(u16(bytes, acs.offset + PCI_ACS_CTRL)),
  };
}

/** The physr function kind from what config (or lspci) tells. */
export function functionKind(
  classCode: number | undefined,
  headerType: number | undefined,
  pcieType: PciePortType | undefined,
): PciFunctionKind {
  // A host bridge function may carry a root-port-typed Express capability (Intel DMI); it forwards nothing.
  if (headerType !== 1 && classCode !== undefined && classCode >> 8 === 0x0600) return 'host-bridge-device';
  switch (pcieType) {
    case 'root-port':
      return 'root-port';
    case 'upstream-port':
      return 'switch-upstream';
    case 'downstream-port':
      return 'switch-downstream';
    case 'pcie-to-pci-bridge':
    case 'pci-to-pcie-bridge':
      return 'pci-bridge';
    case 'rc-integrated-endpoint':
      return 'rc-integrated-endpoint';
    default:
      break;
  }
  if (headerType === 1 || (classCode !== undefined && classCode >> 8 === 0x0604)) return 'pci-bridge';
  if (classCode !== undefined && classCode >> 8 === 0x0600) return 'host-bridge-device';
  return 'endpoint';
}

/** Builds a config space image (for tests and built-in fixtures): the inverse of {@link decodeConfig}. */
export interface ConfigImage {
  readonly length: 64 | 256 | 4096;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly headerType?: number;
  readonly multifunction?: boolean;
  readonly secondaryBus?: number;
  readonly subordinateBus?: number;
  readonly primaryBus?: number;
  /** 32-bit memory BARs by index (64-bit ones are written as two registers). */
  readonly bars?: readonly ConfigBar[];
  readonly pcieType?: PciePortType;
  readonly acs?: { readonly capability: AcsBits; readonly control: AcsBits };
  /** Write a non-ACS extended capability first (so ACS is not at 0x100). */
  readonly aerFirst?: boolean;
}

export function buildConfig(image: ConfigImage): Uint8Array {
  const bytes = new Uint8Array(image.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(PCI_VENDOR_ID, image.vendorId, true);
  view.setUint16(PCI_DEVICE_ID, image.deviceId, true);
  view.setUint32(PCI_CLASS_REVISION, (image.classCode << 8) >>> 0, true);
  const headerType = image.headerType ?? 0;
  view.setUint8(PCI_HEADER_TYPE, headerType | (image.multifunction ? PCI_HEADER_TYPE_MFD : 0));
  if (headerType === 1) {
    view.setUint8(PCI_PRIMARY_BUS, image.primaryBus ?? 0);
    view.setUint8(PCI_SECONDARY_BUS, image.secondaryBus ?? 0);
    view.setUint8(PCI_SUBORDINATE_BUS, image.subordinateBus ?? 0);
  }
  for (const bar of image.bars ?? []) {
    const reg = PCI_BASE_ADDRESS_0 + bar.index * 4;
    if (bar.io) {
      view.setUint32(reg, Number(bar.busAddress & 0xffff_fffcn) | 1, true);
      continue;
    }
    const flags = (bar.is64 ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
    view.setUint32(reg, (Number(bar.busAddress & 0xffff_fff0n) | flags) >>> 0, true);
    if (bar.is64) view.setUint32(reg + 4, Number((bar.busAddress >> 32n) & 0xffff_ffffn), true);
  }
  if (image.pcieType !== undefined && image.length >= CONFIG_SPACE_SIZE) {
    const code = [...PORT_TYPES].find(([, name]) => name === image.pcieType)?.[0] ?? 0;
    view.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
    view.setUint8(PCI_CAPABILITY_LIST, 0x40);
    view.setUint8(0x40, 0x05); // MSI first, so the walk has to follow a pointer
    view.setUint8(0x41, 0x60);
    view.setUint8(0x60, PCI_CAP_ID_EXP);
    view.setUint8(0x61, 0);
    view.setUint16(0x60 + PCI_EXP_FLAGS, (code << 4) | 0x2, true);
  }
  if (image.length === CONFIG_EXP_SPACE_SIZE && image.acs !== undefined) {
    let acsOffset = CONFIG_SPACE_SIZE;
    if (image.aerFirst) {
      acsOffset = 0x148;
      view.setUint32(CONFIG_SPACE_SIZE, (0x0001 | (1 << 16) | (acsOffset << 20)) >>> 0, true);
    }
    view.setUint32(acsOffset, PCI_EXT_CAP_ID_ACS | (1 << 16), true);
    view.setUint16(acsOffset + PCI_ACS_CAP, acsBitsToRegister(image.acs.capability), true);
    view.setUint16(acsOffset + PCI_ACS_CTRL, acsBitsToRegister(image.acs.control), true);
  }
  return bytes;
}

/**
 * The PCI topology as plain data. Built in code (built-in platforms), or imported from a real
 * machine's capture (sysfs, lspci). Whatever a capture does not tell is `undefined` ("unknown"),
 * never invented.
 */

/** `DDDD:BB:DD.F` (domain, bus, device, function), lower-case hex, as sysfs names devices. */
export type Bdf = string;

/** The ACS capability/control bits physr models (PCI_ACS_* in include/uapi/linux/pci_regs.h). */
export interface AcsBits {
  readonly sourceValidation: boolean; // SV, bit 0
  readonly translationBlocking: boolean; // TB, bit 1
  readonly requestRedirect: boolean; // RR, bit 2
  readonly completionRedirect: boolean; // CR, bit 3
  readonly upstreamForwarding: boolean; // UF, bit 4
  readonly egressControl: boolean; // EC, bit 5
  readonly directTranslatedP2p: boolean; // DT, bit 6
}

/**
 * A function's ACS state: `absent` when the function has no ACS extended capability, `known` with
 * capability and control registers, or `unknown` when the capture did not include extended config space.
 */
export type AcsState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'known'; readonly capability: AcsBits; readonly control: AcsBits }
  | { readonly kind: 'unknown'; readonly why: string };

export type PciFunctionKind =
  | 'root-port'
  | 'switch-upstream'
  | 'switch-downstream'
  | 'pci-bridge'
  | 'endpoint'
  | 'rc-integrated-endpoint'
  | 'host-bridge-device';

export interface PciBar {
  /** BAR index 0..5 (a 64-bit BAR takes two slots and is named by the lower one). */
  readonly index: number;
  /** CPU physical address of the BAR (what /proc/iomem and sysfs `resource` show). */
  readonly cpuAddress: bigint;
  readonly size: bigint;
  readonly prefetchable: boolean;
  readonly is64: boolean;
  /** An I/O-port BAR (not memory); never a P2P target. */
  readonly io: boolean;
  /** The capture showed the BAR but not its size (lspci without `[size=]`); `size` is then 0. */
  readonly sizeUnknown?: boolean;
}

export interface PciFunction {
  readonly bdf: Bdf;
  readonly kind: PciFunctionKind;
  readonly vendorId: number | undefined;
  readonly deviceId: number | undefined;
  /** 24-bit class code (class, subclass, prog-if). */
  readonly classCode: number | undefined;
  /** Human label (e.g. "GPU", "mlx5 NIC"); from lspci text when imported. */
  readonly name: string | undefined;
  /** The upstream bridge (pci_upstream_bridge); undefined when this function sits on a root bus. */
  readonly parent: Bdf | undefined;
  /** The host bridge whose root bus this function is under. */
  readonly hostBridge: string;
  readonly bars: readonly PciBar[];
  readonly acs: AcsState;
  /** Function of a multi-function device (header type bit 7), when known. */
  readonly multifunction: boolean | undefined;
  /** Secondary/subordinate bus numbers for bridges. */
  readonly secondaryBus: number | undefined;
  readonly subordinateBus: number | undefined;
  readonly numaNode: number | undefined;
  /** The IOMMU group the capture reported (sysfs iommu_group), when imported. */
  readonly reportedIommuGroup: number | undefined;
}

export interface HostBridge {
  /** e.g. `pci0000:00`. */
  readonly id: string;
  readonly segment: number;
  readonly busStart: number;
  readonly busEnd: number;
  /**
   * Vendor/device of the host bridge's own function (the device at devfn 00.0 of its root bus,
   * as pci_host_bridge_dev and the p2pdma allowlist look at). Undefined when unknown.
   */
  readonly vendorId: number | undefined;
  readonly deviceId: number | undefined;
  /** CPU physical address minus PCI bus address for memory windows (pci_bus_address offset). */
  readonly busOffset: bigint;
  readonly numaNode: number | undefined;
}

export interface CpuInfo {
  readonly vendor: 'intel' | 'amd' | 'arm' | 'unknown';
  /** x86 family number (e.g. 0x17 for AMD Zen); undefined when unknown or not x86. */
  readonly family: number | undefined;
}

export interface PciTopology {
  readonly hostBridges: readonly HostBridge[];
  /** Every PCI function, keyed by BDF. */
  readonly functions: ReadonlyMap<Bdf, PciFunction>;
  readonly cpu: CpuInfo;
}

/**
 * ACS (Access Control Services) bits and the two questions the kernel asks of them:
 * "does this port redirect peer traffic upstream?" (pci_bridge_has_acs_redir in drivers/pci/p2pdma.c)
 * and "are these isolation flags in force?" (pci_acs_flags_enabled / pci_acs_enabled in drivers/pci/pci.c).
 */
import type { AcsBits, AcsState, PciFunction, PciFunctionKind } from './pci-types.ts';

/** Register bit values (PCI_ACS_* in include/uapi/linux/pci_regs.h). */
export const ACS_SV = 0x01;
export const ACS_TB = 0x02;
export const ACS_RR = 0x04;
export const ACS_CR = 0x08;
export const ACS_UF = 0x10;
export const ACS_EC = 0x20;
export const ACS_DT = 0x40;

/** The bits whose control setting sends peer requests/completions upstream (p2pdma's redirect test). */
export const ACS_REDIRECT_MASK = ACS_RR | ACS_CR | ACS_EC;
/** The flags an IOMMU group boundary needs (REQ_ACS_FLAGS in drivers/iommu/iommu.c). */
export const REQ_ACS_FLAGS = ACS_SV | ACS_RR | ACS_CR | ACS_UF;

export function acsBitsFromRegister(value: number): AcsBits {
  return {
    sourceValidation: (value & ACS_SV) !== 0,
    translationBlocking: (value & ACS_TB) !== 0,
    requestRedirect: (value & ACS_RR) !== 0,
    completionRedirect: (value & ACS_CR) !== 0,
    upstreamForwarding: (value & ACS_UF) !== 0,
    egressControl: (value & ACS_EC) !== 0,
    directTranslatedP2p: (value & ACS_DT) !== 0,
  };
}

export function acsBitsToRegister(bits: AcsBits): number {
  return (
    (bits.sourceValidation ? ACS_SV : 0) |
    (bits.translationBlocking ? ACS_TB : 0) |
    (bits.requestRedirect ? ACS_RR : 0) |
    (bits.completionRedirect ? ACS_CR : 0) |
    (bits.upstreamForwarding ? ACS_UF : 0) |
    (bits.egressControl ? ACS_EC : 0) |
    (bits.directTranslatedP2p ? ACS_DT : 0)
  );
}

export const ACS_ABSENT: AcsState = { kind: 'absent' };

/** A function with the ACS capability, from raw capability and control register values. */
export function acsKnown(capability: number, control: number): AcsState {
  return {
    kind: 'known',
    capability: acsBitsFromRegister(capability),
    control: acsBitsFromRegister(control),
  };
}

export function acsUnknown(why: string): AcsState {
  return { kind: 'unknown', why };
}

/**
 * A typical switch downstream or root port: capable of SV, RR, CR, UF (and EC, DT unless told),
 * with SV+UF enabled and RR+CR enabled only when `redirect` is set. Linux's pci_std_enable_acs turns
 * on SV/RR/CR/UF when an IOMMU is in use; `redirect: false` models a kernel booted with
 * pci=disable_acs_redir or no IOMMU.
 */
export function acsPort(options: { redirect: boolean; egressControl?: boolean }): AcsState {
  const capability = ACS_SV | ACS_RR | ACS_CR | ACS_UF | ACS_EC | ACS_DT;
  let control = ACS_SV | ACS_UF;
  if (options.redirect) control |= ACS_RR | ACS_CR;
  if (options.egressControl === true) control |= ACS_EC;
  return acsKnown(capability, control);
}

/**
 * Base class and sub-class of a Root Complex Event Collector (PCI_CLASS_SYSTEM_RCEC in
 * include/linux/pci_ids.h): the PCIe spec gives every RCEC class 08 07 00, and the pcieport driver
 * (drivers/pci/pcie/portdrv.c) finds RCECs by it. A PciFunction keeps no port type, so this is how
 * an RCEC (port type 0xa) is told apart from the endpoints it is otherwise filed with.
 */
export const PCI_CLASS_SYSTEM_RCEC = 0x0807;

/** Whether the function is a Root Complex Event Collector, by its class code. */
export function isRcEventCollector(fn: Pick<PciFunction, 'classCode'>): boolean {
  return fn.classCode !== undefined && fn.classCode >>> 8 === PCI_CLASS_SYSTEM_RCEC;
}

/** Tri-state answer: `unknown` when the capture lacked the extended config space. */
export type AcsAnswer = boolean | 'unknown';

/** pci_bridge_has_acs_redir: RR, CR or EC set in control; a function without the capability never redirects. */
export function acsRedirectOf(acs: AcsState): AcsAnswer {
  if (acs.kind === 'absent') return false;
  if (acs.kind === 'unknown') return 'unknown';
  return (acsBitsToRegister(acs.control) & ACS_REDIRECT_MASK) !== 0;
}

/**
 * pci_acs_flags_enabled: every requested flag the capability implements must be enabled in control;
 * flags missing from the capability count as hard-wired on, except Egress Control, which must be
 * both present and enabled. No capability: not enabled.
 */
export function acsFlagsEnabled(acs: AcsState, flags: number): AcsAnswer {
  if (acs.kind === 'absent') return false;
  if (acs.kind === 'unknown') return 'unknown';
  const wanted = flags & (acsBitsToRegister(acs.capability) | ACS_EC);
  return (acsBitsToRegister(acs.control) & wanted) === wanted;
}

/**
 * pci_acs_enabled (without device-specific quirks): which kinds must implement ACS to be isolated.
 * Downstream and root ports must show the flags; endpoints and upstream ports only when part of a
 * multi-function device (otherwise they are isolated by definition); PCIe-to-PCI bridges and Root
 * Complex Event Collectors never, whatever their ACS registers say (the spec forbids them ACS).
 * `multifunction` is the caller's effective answer (see effectiveMultifunction in iommu-groups.ts).
 */
export function acsEnabled(
  fn: Pick<PciFunction, 'kind' | 'acs' | 'classCode'>,
  multifunction: boolean,
  flags: number,
): AcsAnswer {
  const kind: PciFunctionKind = fn.kind;
  switch (kind) {
    case 'pci-bridge':
      return false;
    case 'root-port':
    case 'switch-downstream':
      return acsFlagsEnabled(fn.acs, flags);
    case 'endpoint':
      // PCI_EXP_TYPE_RC_EC: not isolated even as a single function.
      if (isRcEventCollector(fn)) return false;
      if (!multifunction) return true;
      return acsFlagsEnabled(fn.acs, flags);
    case 'switch-upstream':
    case 'rc-integrated-endpoint':
    case 'host-bridge-device':
      if (!multifunction) return true;
      return acsFlagsEnabled(fn.acs, flags);
  }
}

/**
 * ACS as Linux leaves it after boot, and the `pci=disable_acs_redir=` kernel parameter that changes it
 * (drivers/pci/pci.c: pci_enable_acs, pci_std_enable_acs, __pci_config_acs, pci_dev_str_match).
 *
 * - With an IOMMU, pci_std_enable_acs sets Source Validation, P2P Request Redirect, P2P Completion
 *   Redirect and Upstream Forwarding in the control register of every function whose capability has
 *   them (Translation Blocking only for untrusted/external ports or with ATS off, not modelled).
 * - `disable_acs_redir=` then applies, IOMMU or not: for a matched function the control becomes the
 *   firmware's value with RR, CR and EC cleared (the firmware value is the base for every bit,
 *   so what pci_std_enable_acs added is dropped there too; as in Linux 6.12 and 7.1).
 *
 * One parser and one formatter of the parameter serve the platform option and the remedies the P2P
 * matrix prints, so a printed remedy is always one the parser (and the kernel) accepts.
 */
import { fail, type SourceLocation } from '../core/index.ts';
import { ACS_CR, ACS_EC, ACS_RR, ACS_SV, ACS_UF, acsBitsFromRegister, acsBitsToRegister } from './pci-acs.ts';
import { parseBdfParts } from './pci-bdf.ts';
import type { AcsState, Bdf, PciFunction, PciTopology } from './pci-types.ts';

/** What pci_std_enable_acs turns on when the capability has it. */
export const ACS_BOOT_ENABLE = ACS_SV | ACS_RR | ACS_CR | ACS_UF;
/** What disable_acs_redir clears (the mask __pci_config_acs is called with). */
export const ACS_REDIR_MASK = ACS_RR | ACS_CR | ACS_EC;

/** One device of the parameter: a path `[DDDD:]BB:DD.F[/DD.F]*` or `pci:VVVV:DDDD[:SVVV:SDDD]`. */
export type AcsDeviceMatch =
  | {
      readonly kind: 'path';
      readonly segment: number;
      readonly bus: number;
      /** devfn steps: the first is on `bus`, each next one below the previous (the device last). */
      readonly steps: readonly { readonly device: number; readonly function: number }[];
      readonly text: string;
    }
  | {
      readonly kind: 'ids';
      /** 0 matches any (as the kernel treats a zero ID). */
      readonly vendorId: number;
      readonly deviceId: number;
      readonly text: string;
    };

const PARAM_PREFIX = /^(?:pci=)?(?:disable_acs_redir=)?/;
const DEVFN = /^([0-9a-f]{1,2})\.([0-7])$/i;

function parsePathEntry(text: string, location: SourceLocation | undefined): AcsDeviceMatch {
  const [head, ...rest] = text.split('/');
  const parts = parseBdfParts(head!, location);
  const steps = [{ device: parts.device, function: parts.function }];
  for (const step of rest) {
    const m = DEVFN.exec(step);
    if (m === null || Number.parseInt(m[1]!, 16) > 0x1f)
      fail('EINVAL', `disable_acs_redir: "${step}" in "${text}" is not a DD.F path step`, location);
    steps.push({ device: Number.parseInt(m[1]!, 16), function: Number.parseInt(m[2]!, 10) });
  }
  return { kind: 'path', segment: parts.segment, bus: parts.bus, steps, text };
}

/**
 * Parses `pci=disable_acs_redir=LIST` (the `pci=` and `disable_acs_redir=` prefixes optional). LIST is
 * devices separated by `;` (or `,` after a `pci:` ID entry, as __pci_config_acs also accepts).
 * Unlike the kernel, which logs "Can't parse ACS command line parameter" and stops, an entry it
 * cannot parse is a located EINVAL.
 */
export function parseDisableAcsRedir(text: string, location?: SourceLocation): AcsDeviceMatch[] {
  const list = text.trim().replace(PARAM_PREFIX, '');
  if (list === '') fail('EINVAL', 'disable_acs_redir: expected one or more devices, found none', location);
  const out: AcsDeviceMatch[] = [];
  let rest = list;
  while (rest !== '') {
    if (rest.startsWith('pci:')) {
      // pci_dev_str_match: IDs end where sscanf stops; `;` or `,` may follow.
      const m = /^pci:([0-9a-f]{1,4}):([0-9a-f]{1,4})(?::([0-9a-f]{1,4}):([0-9a-f]{1,4}))?(?=$|[;,])/i.exec(
        rest,
      );
      if (m === null)
        fail(
          'EINVAL',
          `disable_acs_redir: "${rest.split(/[;,]/)[0]}" is not pci:VVVV:DDDD[:SVVV:SDDD]`,
          location,
        );
      if (m[3] !== undefined && (Number.parseInt(m[3], 16) !== 0 || Number.parseInt(m[4]!, 16) !== 0))
        fail(
          'EINVAL',
          `disable_acs_redir: "${m[0]}": subsystem IDs are not modelled (captures do not keep them)`,
          location,
        );
      out.push({
        kind: 'ids',
        vendorId: Number.parseInt(m[1]!, 16),
        deviceId: Number.parseInt(m[2]!, 16),
        text: m[0],
      });
      rest = rest.slice(m[0].length);
    } else {
      // pci_dev_str_match_path: a path runs to the next `;`.
      const end = rest.indexOf(';');
      const entry = end < 0 ? rest : rest.slice(0, end);
      if (entry === '') fail('EINVAL', `disable_acs_redir: an empty entry in "${list}"`, location);
      out.push(parsePathEntry(entry, location));
      rest = end < 0 ? '' : rest.slice(end);
    }
    if (rest !== '') {
      rest = rest.slice(1);
      if (rest === '') fail('EINVAL', `disable_acs_redir: "${list}" ends with a separator`, location);
    }
  }
  return out;
}

/** The kernel parameter that clears redirect on these functions, in pci_name() form joined by `;`. */
export function formatDisableAcsRedir(bdfs: readonly Bdf[]): string {
  return `pci=disable_acs_redir=${bdfs.join(';')}`;
}

/** pci_dev_str_match for one entry: a path is matched from the device up its upstream bridges. */
export function acsMatchEntry(topology: PciTopology, fn: PciFunction, match: AcsDeviceMatch): boolean {
  if (match.kind === 'ids') {
    return (
      (match.vendorId === 0 || match.vendorId === fn.vendorId) &&
      (match.deviceId === 0 || match.deviceId === fn.deviceId)
    );
  }
  let dev: PciFunction | undefined = fn;
  for (let i = match.steps.length - 1; i >= 0; i--) {
    if (dev === undefined) return false;
    const p = parseBdfParts(dev.bdf);
    const step = match.steps[i]!;
    if (p.device !== step.device || p.function !== step.function) return false;
    if (i === 0) return p.segment === match.segment && p.bus === match.bus;
    dev = dev.parent === undefined ? undefined : topology.functions.get(dev.parent);
  }
  return false;
}

export interface AcsBootOptions {
  /** An IOMMU is in use, so pci_std_enable_acs runs (pci_acs_enable, set by pci_request_acs). */
  readonly iommu: boolean;
  /** Parsed `disable_acs_redir=` devices. */
  readonly disableAcsRedir?: readonly AcsDeviceMatch[];
}

function bootOne(topology: PciTopology, fn: PciFunction, options: AcsBootOptions): AcsState {
  const acs = fn.acs;
  if (acs.kind !== 'known') return acs;
  const cap = acsBitsToRegister(acs.capability);
  const firmware = acsBitsToRegister(acs.control);
  let ctrl = firmware;
  if (options.iommu) ctrl |= cap & ACS_BOOT_ENABLE;
  if (options.disableAcsRedir?.some((m) => acsMatchEntry(topology, fn, m)) === true)
    ctrl = firmware & ~ACS_REDIR_MASK;
  return ctrl === firmware ? acs : { ...acs, control: acsBitsFromRegister(ctrl) };
}

/**
 * The topology as Linux leaves it after pci_enable_acs ran on every function: `topology` holds the
 * firmware's ACS control values.
 */
export function bootAcs(topology: PciTopology, options: AcsBootOptions): PciTopology {
  const functions = new Map<Bdf, PciFunction>();
  for (const [bdf, fn] of topology.functions) {
    const acs = bootOne(topology, fn, options);
    functions.set(bdf, acs === fn.acs ? fn : { ...fn, acs });
  }
  return { ...topology, functions };
}

/** The functions a parsed parameter matches (for reports: "disable_acs_redir applied to …"). */
export function acsRedirTargets(topology: PciTopology, matches: readonly AcsDeviceMatch[]): Bdf[] {
  return [...topology.functions.values()]
    .filter((fn) => matches.some((m) => acsMatchEntry(topology, fn, m)))
    .map((fn) => fn.bdf);
}

/** What physr models of a kernel command line. */
export interface KernelCmdline {
  readonly disableAcsRedir?: readonly AcsDeviceMatch[];
}

/**
 * A kernel command line as a user would pass it. Only `pci=disable_acs_redir=LIST` is modelled;
 * `pci=` options are comma-separated as pci_setup (drivers/pci/pci.c) splits them, so LIST ends at a
 * comma there. Anything else is a located EINVAL rather than silently ignored.
 */
export function parseKernelCmdline(text: string, location?: SourceLocation): KernelCmdline {
  let disableAcsRedir: AcsDeviceMatch[] | undefined;
  for (const word of text.trim().split(/\s+/)) {
    if (word === '') continue;
    if (!word.startsWith('pci='))
      fail('EINVAL', `kernel parameter "${word}" is not modelled (only pci=disable_acs_redir=)`, location);
    for (const option of word.slice(4).split(',')) {
      if (!option.startsWith('disable_acs_redir='))
        fail('EINVAL', `pci=${option} is not modelled (only pci=disable_acs_redir=)`, location);
      disableAcsRedir = [...(disableAcsRedir ?? []), ...parseDisableAcsRedir(option, location)];
    }
  }
  return disableAcsRedir === undefined ? {} : { disableAcsRedir };
}

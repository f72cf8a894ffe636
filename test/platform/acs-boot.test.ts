/**
 * ACS as Linux boots it (drivers/pci/pci.c pci_enable_acs / pci_std_enable_acs / __pci_config_acs)
 * and the one parser/formatter of `pci=disable_acs_redir=` shared by platforms and remedies.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { isPhysrError } from '../../src/core/index.ts';
import {
  ACS_CR,
  ACS_EC,
  ACS_RR,
  ACS_SV,
  ACS_UF,
  acsBitsToRegister,
  acsKnown,
  acsRedirTargets,
  BUILTIN_TOPOLOGIES,
  bootAcs,
  buildTopology,
  builtinTopology,
  downstreamPort,
  endpoint,
  formatDisableAcsRedir,
  type PciTopology,
  parseDisableAcsRedir,
  parseKernelCmdline,
  pciSwitch,
  rootPort,
  twoSocketServer,
} from '../../src/platform/index.ts';

function control(topology: PciTopology, bdf: string): number | undefined {
  const acs = topology.functions.get(bdf)!.acs;
  return acs.kind === 'known' ? acsBitsToRegister(acs.control) : undefined;
}

/** A switch whose ports have every ACS bit in the capability and the given firmware control. */
function switchTopology(firmware: number): PciTopology {
  const acs = acsKnown(0x7f, firmware);
  return buildTopology({
    hostBridges: [
      {
        vendorId: 0x8086,
        deviceId: 0x09a2,
        children: [
          rootPort({ device: 1, acs, vendorId: 0x8086, deviceId: 0x347a }, [
            pciSwitch({ vendorId: 0x1000, deviceId: 0xc010 }, [
              downstreamPort({ device: 0, acs, vendorId: 0x1000, deviceId: 0xc010 }, [
                endpoint({ vendorId: 0x10de, deviceId: 0x2330, classCode: 0x030200 }),
              ]),
              downstreamPort({ device: 1, acs, vendorId: 0x1000, deviceId: 0xc010 }, [
                endpoint({ vendorId: 0x15b3, deviceId: 0x101d, classCode: 0x020700 }),
              ]),
            ]),
          ]),
        ],
      },
    ],
  });
}

describe('pci_enable_acs at boot', () => {
  test.prop([fc.integer({ min: 0, max: 0x7f })], { numRuns: 40 })(
    'with an IOMMU: firmware | (cap & SV|RR|CR|UF); without one: firmware untouched',
    (firmware) => {
      const t = switchTopology(firmware);
      const on = bootAcs(t, { iommu: true });
      const off = bootAcs(t, { iommu: false });
      for (const bdf of ['0000:00:01.0', '0000:02:00.0', '0000:02:01.0']) {
        expect(control(on, bdf)).toBe(firmware | ACS_SV | ACS_RR | ACS_CR | ACS_UF);
        expect(control(off, bdf)).toBe(firmware);
      }
    },
  );

  test.prop([fc.integer({ min: 0, max: 0x7f }), fc.boolean()], { numRuns: 40 })(
    'disable_acs_redir: the matched port gets the firmware value with RR, CR and EC cleared',
    (firmware, iommu) => {
      const t = bootAcs(switchTopology(firmware), {
        iommu,
        disableAcsRedir: parseDisableAcsRedir('0000:02:01.0'),
      });
      expect(control(t, '0000:02:01.0')).toBe(firmware & ~(ACS_RR | ACS_CR | ACS_EC));
      expect(control(t, '0000:02:00.0')).toBe(iommu ? firmware | 0x1d : firmware);
    },
  );

  test('a capability without RR is not given RR (only bits the port implements)', () => {
    const t = buildTopology({
      hostBridges: [{ children: [rootPort({ device: 1, acs: acsKnown(ACS_SV | ACS_UF, 0) })] }],
    });
    expect(control(bootAcs(t, { iommu: true }), '0000:00:01.0')).toBe(ACS_SV | ACS_UF);
  });

  test('every built-in platform (all have an IOMMU) starts with RR and CR on at each port that has them', () => {
    for (const b of BUILTIN_TOPOLOGIES) {
      expect(b.iommu).not.toBe('none');
      let ports = 0;
      for (const fn of b.build().functions.values()) {
        if (fn.acs.kind !== 'known') continue;
        const cap = acsBitsToRegister(fn.acs.capability);
        expect(control(b.build(), fn.bdf)! & cap & 0x1d, `${b.name} ${fn.bdf}`).toBe(cap & 0x1d);
        ports++;
      }
      expect(ports, b.name).toBeGreaterThan(0);
    }
    // The firmware state of the same hardware had redirect off on the switch ports.
    expect(control(twoSocketServer(), '0000:02:00.0')).toBe(ACS_SV | ACS_UF);
    expect(control(builtinTopology('x86-2s')!.build(), '0000:02:00.0')).toBe(0x1d);
  });
});

describe('the disable_acs_redir syntax', () => {
  test('paths, short BDFs, bridge paths and IDs, with or without pci=', () => {
    expect(parseDisableAcsRedir('pci=disable_acs_redir=0000:02:00.0;02:01.0').map((m) => m.text)).toEqual([
      '0000:02:00.0',
      '02:01.0',
    ]);
    const path = parseDisableAcsRedir('0000:00:01.0/00.0/01.0')[0]!;
    expect(path).toEqual({
      kind: 'path',
      segment: 0,
      bus: 0,
      steps: [
        { device: 1, function: 0 },
        { device: 0, function: 0 },
        { device: 1, function: 0 },
      ],
      text: '0000:00:01.0/00.0/01.0',
    });
    expect(parseDisableAcsRedir('pci:1000:c010,pci:8086:0;0000:00:01.0').map((m) => m.kind)).toEqual([
      'ids',
      'ids',
      'path',
    ]);
  });

  test('what each form matches, as pci_dev_str_match does', () => {
    const t = switchTopology(0);
    expect(acsRedirTargets(t, parseDisableAcsRedir('0000:00:01.0/00.0/01.0'))).toEqual(['0000:02:01.0']);
    // The path must hold at every level: 00:01.0/00.0/00.0/00.0 reaches the GPU, 00:03.0/... nothing.
    expect(acsRedirTargets(t, parseDisableAcsRedir('00:01.0/00.0/00.0/00.0'))).toEqual(['0000:03:00.0']);
    expect(acsRedirTargets(t, parseDisableAcsRedir('00:03.0/00.0/01.0'))).toEqual([]);
    expect(acsRedirTargets(t, parseDisableAcsRedir('pci:1000:c010'))).toEqual([
      '0000:01:00.0',
      '0000:02:00.0',
      '0000:02:01.0',
    ]);
    expect(acsRedirTargets(t, parseDisableAcsRedir('pci:0:101d'))).toEqual(['0000:04:00.0']);
  });

  test.prop(
    [
      fc.uniqueArray(
        fc.tuple(
          fc.integer({ min: 0, max: 0xff }),
          fc.integer({ min: 0, max: 0x1f }),
          fc.integer({ min: 0, max: 7 }),
        ),
        { minLength: 1, maxLength: 6 },
      ),
    ],
    { numRuns: 50 },
  )('the formatter writes what the parser reads back (pci_name form joined by ;)', (parts) => {
    const bdfs = parts.map(
      ([bus, dev, fn]) =>
        `0000:${bus.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${fn}`,
    );
    const text = formatDisableAcsRedir(bdfs);
    expect(text.startsWith('pci=disable_acs_redir=')).toBe(true);
    expect(parseDisableAcsRedir(text).map((m) => m.text)).toEqual(bdfs);
    expect(parseKernelCmdline(text).disableAcsRedir?.map((m) => m.text)).toEqual(bdfs);
  });

  test.each([
    ['', /expected one or more devices/],
    ['0000:02:00.0;', /ends with a separator/],
    ['0000:02:00.0;;02:01.0', /an empty entry/],
    ['0000:02:00.0/3', /"3" .* is not a DD\.F path step/],
    ['pci:10de', /is not pci:VVVV:DDDD/],
    ['pci:10de:2330:1234:5678', /subsystem IDs are not modelled/],
    ['02:20.0', /not a PCI address|above 0x1f/],
  ])('"%s" is a located EINVAL', (text, reason) => {
    try {
      parseDisableAcsRedir(text, { field: 'cmdline' });
      throw new Error('parsed');
    } catch (error) {
      expect(isPhysrError(error, 'EINVAL')).toBe(true);
      expect((error as Error).message).toMatch(reason);
      expect(isPhysrError(error) && error.location?.field).toBe('cmdline');
    }
  });

  test('a kernel command line: only pci=disable_acs_redir is modelled; pci= options split at commas', () => {
    expect(parseKernelCmdline('  pci=disable_acs_redir=02:00.0  ').disableAcsRedir?.length).toBe(1);
    expect(() => parseKernelCmdline('iommu=pt')).toThrow(/"iommu=pt" is not modelled/);
    expect(() => parseKernelCmdline('pci=noats')).toThrow(/pci=noats is not modelled/);
    expect(() => parseKernelCmdline('pci=disable_acs_redir=02:00.0,noats')).toThrow(/pci=noats/);
    expect(parseKernelCmdline('')).toEqual({});
  });
});

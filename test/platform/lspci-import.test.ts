/** The lspci importer on hand-written captures (server with a switch, laptop, ARM server) and bad input. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { formatError, isPhysrError } from '../../src/core/index.ts';
import {
  acsBitsFromRegister,
  acsEnabled,
  deriveIommuGroups,
  importLspci,
  isRcEventCollector,
  REQ_ACS_FLAGS,
} from '../../src/platform/index.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const load = (name: string) =>
  importLspci({
    tree: readFileSync(join(FIXTURES, `lspci-${name}-tree.txt`), 'utf8'),
    verbose: readFileSync(join(FIXTURES, `lspci-${name}-verbose.txt`), 'utf8'),
    treeFile: `lspci-${name}-tree.txt`,
    verboseFile: `lspci-${name}-verbose.txt`,
  });

function einval(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isPhysrError(error, 'EINVAL')).toBe(true);
    if (isPhysrError(error)) return formatError(error);
  }
  throw new Error('expected a PhysrError');
}

describe('lspci import: two-socket server with a PCIe switch', () => {
  const { topology, notes } = load('server');
  const f = (bdf: string) => topology.functions.get(bdf)!;

  test('hierarchy from the -tv drawing', () => {
    expect(topology.hostBridges.map((h) => [h.id, h.busStart, h.busEnd, h.numaNode])).toEqual([
      ['pci0000:00', 0, 2, 0],
      ['pci0000:80', 0x80, 0x84, 1],
    ]);
    expect(f('0000:83:00.0').parent).toBe('0000:82:00.0');
    expect(f('0000:84:00.1').parent).toBe('0000:82:01.0');
    expect(f('0000:82:01.0').parent).toBe('0000:81:00.0');
    expect(f('0000:81:00.0').parent).toBe('0000:80:02.0');
    expect(f('0000:80:05.0').parent).toBeUndefined();
    expect(f('0000:00:1c.0').secondaryBus).toBe(2);
    expect([f('0000:80:02.0').secondaryBus, f('0000:80:02.0').subordinateBus]).toEqual([0x81, 0x84]);
  });

  test('kinds from the Express capability, IDs, class and names from -vvv', () => {
    expect(f('0000:80:00.0').kind).toBe('host-bridge-device');
    expect(f('0000:80:02.0').kind).toBe('root-port');
    expect(f('0000:81:00.0').kind).toBe('switch-upstream');
    expect(f('0000:82:00.0').kind).toBe('switch-downstream');
    expect(f('0000:80:05.0').kind).toBe('rc-integrated-endpoint');
    expect(f('0000:83:00.0')).toMatchObject({
      kind: 'endpoint',
      vendorId: 0x10de,
      deviceId: 0x20f1,
      classCode: 0x030200,
    });
    expect(f('0000:01:00.0').classCode).toBe(0x010802);
    expect(f('0000:83:00.0').name).toBe('NVIDIA Corporation GA100 [A100 PCIe 40GB]');
    expect(f('0000:84:00.0').multifunction).toBe(true);
    expect(f('0000:83:00.0').multifunction).toBeUndefined();
    expect(f('0000:84:00.1').reportedIommuGroup).toBe(46);
  });

  test('Region lines become BARs; 64-bit addresses above 2^32 keep every bit', () => {
    expect(f('0000:83:00.0').bars).toEqual([
      { index: 0, cpuAddress: 0xc500_0000n, size: 16n << 20n, prefetchable: false, is64: false, io: false },
      { index: 1, cpuAddress: 0x380_0000_0000n, size: 64n << 30n, prefetchable: true, is64: true, io: false },
      { index: 3, cpuAddress: 0x390_0000_0000n, size: 32n << 20n, prefetchable: true, is64: true, io: false },
    ]);
  });

  test('ACS: known from ACSCap/ACSCtl, absent when lspci read the capabilities, unknown without them', () => {
    expect(f('0000:80:02.0').acs).toEqual({
      kind: 'known',
      capability: acsBitsFromRegister(0x1f),
      control: acsBitsFromRegister(0x1d),
    });
    expect(f('0000:82:00.0').acs).toEqual({
      kind: 'known',
      capability: acsBitsFromRegister(0x7f),
      control: acsBitsFromRegister(0x11),
    });
    expect(f('0000:81:00.0').acs).toEqual({ kind: 'absent' });
    // PCIe functions whose capability list lspci read (no <access denied>) but with no extended caps.
    expect(f('0000:80:05.0').acs).toEqual({ kind: 'absent' });
    expect(f('0000:80:00.0').acs).toEqual({ kind: 'absent' });
    // The ISA bridge's block has no Capabilities/Control/Status lines: nothing proves it is -vvv text.
    expect(notes.filter((n) => n.what === 'acs')).toEqual([
      {
        bdf: '0000:00:1f.0',
        what: 'acs',
        why: 'lspci shows no capabilities or Status line (not -vvv output)',
      },
    ]);
  });
});

describe('lspci import: laptop and ARM server', () => {
  test('a laptop captured without root: ACS unknown, port type unknown, BARs still read', () => {
    const { topology } = load('laptop');
    const gpu = topology.functions.get('0000:00:02.0')!;
    expect(gpu.bars.map((b) => [b.index, b.size, b.io])).toEqual([
      [0, 16n << 20n, false],
      [2, 256n << 20n, false],
      [4, 64n, true],
    ]);
    expect(gpu.acs).toEqual({ kind: 'unknown', why: 'lspci: capabilities <access denied> (run as root)' });
    expect(topology.functions.get('0000:00:06.0')!.kind).toBe('pci-bridge');
    expect(topology.functions.get('0000:02:00.0')!.parent).toBe('0000:00:1c.0');
    expect(topology.cpu.vendor).toBe('unknown');
  });

  test('an ARM server with two PCI domains', () => {
    const { topology } = load('arm');
    expect(topology.hostBridges.map((h) => h.id)).toEqual(['pci0000:00', 'pci0002:00']);
    expect(topology.functions.get('0000:02:00.0')!.parent).toBe('0000:01:00.0');
    expect(topology.functions.get('0002:01:00.0')!.hostBridge).toBe('pci0002:00');
    expect(topology.functions.get('0000:02:00.0')!.bars[1]!.cpuAddress).toBe(0x2800_0000_0000n);
  });
});

describe('lspci import: ACS absent or unknown without ACS lines (pci_cfg_space_size)', () => {
  const tree = '-[0000:00]-+-00.0  Host\n           \\-01.0  Dev\n';
  const host = '00:00.0 Host bridge [0600]: Intel Corporation X [8086:1234]\n';
  const control =
    '\tControl: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx-\n';
  const status = (cap: '+' | '-') =>
    `\tStatus: Cap${cap} 66MHz- UDF- FastB2B+ ParErr- DEVSEL=medium >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-\n`;
  const pm =
    '\tCapabilities: [dc] Power Management version 2\n\t\tStatus: D0 NoSoftRst- PME-Enable- DSel=0 DScale=0 PME-\n';
  /** The ACS state of 00:01.0 when its -vvv block is `header` then `body`. */
  const acsOf = (header: string, body: string) =>
    importLspci({ tree, verbose: `${host}\n${header}\n${body}` }).topology.functions.get('0000:00:01.0')!.acs;
  const nic = '00:01.0 Ethernet controller [0200]: Intel Corporation 82540EM [8086:100e] (rev 02)';
  const gpu = '00:01.0 VGA compatible controller [0300]: NVIDIA Corporation X [10de:1234] (rev a1)';
  const hostFn = '00:01.0 Host bridge [0600]: Intel Corporation Y [8086:1235]';

  test('a conventional PCI function in -vvv output: absent (no extended space, so no ACS)', () => {
    expect(acsOf(nic, `${control}${status('+')}${pm}`)).toEqual({ kind: 'absent' });
    // No capability list at all (Status: Cap-): lspci prints no Capabilities lines, even without root.
    expect(acsOf(nic, `${control}${status('-')}`)).toEqual({ kind: 'absent' });
    // A PCI-X capability below Mode 2 leaves it conventional; lspci found no extended caps either.
    expect(acsOf(nic, `${status('+')}\tCapabilities: [e4] PCI-X non-bridge device\n`)).toEqual({
      kind: 'absent',
    });
  });

  test('plain `lspci -nn` (or a block without verbose lines): unknown, never guessed', () => {
    expect(acsOf(nic, '')).toEqual({
      kind: 'unknown',
      why: 'lspci shows no capabilities or Status line (not -vvv output)',
    });
    expect(
      acsOf(
        nic,
        '\tSubsystem: Intel Corporation PRO/1000 [8086:001e]\n\tRegion 0: Memory at febc0000 (32-bit, non-prefetchable) [size=128K]\n',
      ).kind,
    ).toBe('unknown');
    // Cap+ with no Capabilities lines is a cut-short block, not proof of a conventional function.
    expect(acsOf(nic, `${control}${status('+')}`)).toEqual({
      kind: 'unknown',
      why: 'lspci: Status says Cap+ but no Capabilities lines follow (truncated?)',
    });
  });

  test('a PCIe function: absent when lspci read its capabilities, unknown behind <access denied>', () => {
    const express = `${control}${status('+')}${pm}\tCapabilities: [78] Express (v2) Endpoint, MSI 00\n`;
    expect(acsOf(gpu, express)).toEqual({ kind: 'absent' });
    expect(acsOf(gpu, `${express}\tCapabilities: [100 v1] Virtual Channel\n`)).toEqual({ kind: 'absent' });
    // -v prints the Express line without the version.
    expect(acsOf(gpu, '\tCapabilities: [78] Express Endpoint, MSI 00\n')).toEqual({ kind: 'absent' });
    expect(acsOf(gpu, `${control}${status('+')}\tCapabilities: <access denied>\n`)).toEqual({
      kind: 'unknown',
      why: 'lspci: capabilities <access denied> (run as root)',
    });
  });

  test('a host bridge may have extended space without Express, where lspci does not look: unknown', () => {
    expect(acsOf(hostFn, `${control}${status('+')}${pm}`).kind).toBe('unknown');
    expect(acsOf(hostFn, `${control}${status('-')}`).kind).toBe('unknown');
    expect(
      acsOf(hostFn, `${status('+')}\tCapabilities: [90] Express (v2) Root Port (Slot-), MSI 00\n`),
    ).toEqual({
      kind: 'absent',
    });
  });
});

describe('lspci import: a Root Complex Event Collector never counts as ACS-isolated (pci_acs_enabled)', () => {
  const tree = '-[0000:00]-+-00.0  Host\n           +-0d.0  IEH\n           \\-0d.1  RCEC\n';
  const all = 'SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl+ DirectTrans+';
  const on = 'SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-';
  const verbose = [
    '00:00.0 Host bridge [0600]: Intel Corporation Ice Lake Memory Map/VT-d [8086:09a2] (rev 04)',
    '\tCapabilities: [40] Express (v2) Root Complex Integrated Endpoint, MSI 00',
    '',
    '00:0d.0 System peripheral [0880]: Intel Corporation Ice Lake IEH [8086:0998]',
    '\tCapabilities: [40] Express (v2) Root Complex Integrated Endpoint, MSI 00',
    '\tCapabilities: [100 v1] Advanced Error Reporting',
    '',
    '00:0d.1 Generic system peripheral [0807]: Intel Corporation Ice Lake RCEC [8086:0b23]',
    '\tCapabilities: [40] Express (v2) Root Complex Event Collector, MSI 00',
    '\tCapabilities: [100 v1] Advanced Error Reporting',
    '\tCapabilities: [148 v1] Access Control Services',
    `\t\tACSCap:\t${all}`,
    `\t\tACSCtl:\t${on}`,
    '',
  ].join('\n');
  const { topology } = importLspci({ tree, verbose });
  const rcec = topology.functions.get('0000:00:0d.1')!;

  test('filed as an endpoint, told apart by its class 08 07 00, and never isolated', () => {
    expect(rcec).toMatchObject({ kind: 'endpoint', classCode: 0x080700, multifunction: true });
    expect(rcec.acs.kind).toBe('known');
    expect(isRcEventCollector(rcec)).toBe(true);
    expect(acsEnabled(rcec, true, REQ_ACS_FLAGS)).toBe(false);
    expect(acsEnabled(rcec, false, REQ_ACS_FLAGS)).toBe(false);
    // The same registers on an ordinary multi-function endpoint do isolate it.
    expect(acsEnabled({ ...rcec, classCode: 0x088000 }, true, REQ_ACS_FLAGS)).toBe(true);
    expect(isRcEventCollector(topology.functions.get('0000:00:0d.0')!)).toBe(false);
  });

  test('iommu groups: the RCEC joins its ACS-less sibling function (get_pci_function_alias_group)', () => {
    const { groupOf, groups } = deriveIommuGroups(topology);
    const id = groupOf.get('0000:00:0d.1')!;
    expect(groupOf.get('0000:00:0d.0')).toBe(id);
    expect(groupOf.get('0000:00:00.0')).not.toBe(id);
    expect(groups[id]).toMatchObject({ members: ['0000:00:0d.0', '0000:00:0d.1'], certainty: 'derived' });
    expect(groups[id]!.reasons.join('\n')).toMatch(/multi-function device without ACS isolation/);
  });
});

describe('malformed lspci text', () => {
  const tree = '-[0000:00]-+-00.0  Host\n           \\-01.0  NIC\n';
  const verbose =
    '00:00.0 Host bridge [0600]: Intel Corporation X [8086:1234]\n\n00:01.0 Ethernet controller [0200]: Intel Corporation Y [8086:1533]\n';

  test('baseline parses', () => {
    expect(importLspci({ tree, verbose }).topology.functions.size).toBe(2);
  });
  test('a bad Region line', () => {
    const bad = `${verbose}\tRegion 0: Memory at zzzz (64-bit, prefetchable) [size=32M]\n`;
    expect(einval(() => importLspci({ tree, verbose: bad, verboseFile: 'v.txt' }))).toMatch(
      /^v\.txt:4: EINVAL: Region 0 address "0xzzzz"/,
    );
  });
  test('an ACSCtl line missing a flag', () => {
    const bad = `${verbose}\tCapabilities: [148 v1] Access Control Services\n\t\tACSCap:\tSrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-\n\t\tACSCtl:\tSrcValid+ ReqRedir+\n`;
    expect(einval(() => importLspci({ tree, verbose: bad, verboseFile: 'v.txt' }))).toMatch(
      /^v\.txt:6: EINVAL: expected TransBlk\+ or TransBlk-/,
    );
  });
  test('ACS capability without its register lines (truncated)', () => {
    const bad = `${verbose}\tCapabilities: [148 v1] Access Control Services\n`;
    expect(einval(() => importLspci({ tree, verbose: bad, verboseFile: 'v.txt' }))).toMatch(
      /^v\.txt:3: .*without both ACSCap: and ACSCtl:/,
    );
  });
  test('a garbled header line', () => {
    expect(einval(() => importLspci({ tree, verbose: 'hello world\n', verboseFile: 'v.txt' }))).toMatch(
      /^v\.txt:1: EINVAL: expected a device header/,
    );
  });
  test('a device before any root bus in the tree', () => {
    expect(einval(() => importLspci({ tree: '+-00.0  Host\n', verbose: '', treeFile: 't.txt' }))).toMatch(
      /^t\.txt:1:2: EINVAL: expected a root bus/,
    );
  });
  test('a tree line with no devices', () => {
    expect(einval(() => importLspci({ tree: `${tree}garbage here\n`, verbose, treeFile: 't.txt' }))).toMatch(
      /^t\.txt:3: EINVAL: expected a tree line/,
    );
  });
  test('-vvv and -tv from different machines', () => {
    const other = `${verbose}\n05:00.0 Ethernet controller [0200]: Intel Corporation Z [8086:1533]\n`;
    expect(einval(() => importLspci({ tree, verbose: other, verboseFile: 'v.txt' }))).toMatch(
      /^v\.txt:5: .*not in the -tv tree/,
    );
  });
});

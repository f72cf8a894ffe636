/**
 * lspci as people post it in forum threads and bug reports: a tree alone (with or without IDs), a
 * verbose listing without -nn, a grep of the ACS lines, BARs without sizes; and the mangled posts
 * (duplicates, truncated lines, bus ranges with no device) as located errors.
 */
import { describe, expect, test } from 'vitest';
import { acsBitsToRegister, importLspci, p2pMatrix } from '../../src/platform/index.ts';
import { caughtPhysrError } from '../errno.ts';

const parseLspciTree = (tree: string, treeFile: string) => importLspci({ tree, treeFile });

const caught = caughtPhysrError;

// An EPYC box's `lspci -tvnn`, trimmed: a GPU and a NIC under one switch, off one root port.
const TVNN = `-[0000:00]-+-00.0  Advanced Micro Devices, Inc. [AMD] Starship/Matisse Root Complex [1022:1480]
           +-01.0  Advanced Micro Devices, Inc. [AMD] Starship/Matisse PCIe Dummy Host Bridge [1022:1482]
           +-01.1-[01-04]----00.0-[02-04]--+-00.0-[03]----00.0  NVIDIA Corporation GA102 [GeForce RTX 3090] [10de:2204]
           |                               \\-01.0-[04]----00.0  Mellanox Technologies MT2892 Family [ConnectX-6 Dx] [15b3:101d]
           \\-07.0  Advanced Micro Devices, Inc. [AMD] Starship/Matisse PCIe Dummy Host Bridge [1022:1482]
`;

describe('a tree alone', () => {
  test('-tvnn: hierarchy and IDs; bridges typed from where they sit; class, BARs, ACS unknown', () => {
    const { topology, notes } = importLspci({ tree: TVNN, treeFile: 'post.txt' });
    const gpu = topology.functions.get('0000:03:00.0')!;
    expect([gpu.vendorId, gpu.deviceId, gpu.parent, gpu.name]).toEqual([
      0x10de,
      0x2204,
      '0000:02:00.0',
      'NVIDIA Corporation GA102 [GeForce RTX 3090]',
    ]);
    expect(gpu.classCode).toBeUndefined();
    expect(gpu.acs).toEqual({ kind: 'unknown', why: 'not in the -vvv output' });
    expect(
      ['0000:00:01.1', '0000:01:00.0', '0000:02:00.0'].map((b) => topology.functions.get(b)!.kind),
    ).toEqual(['root-port', 'switch-upstream', 'switch-downstream']);
    expect(topology.hostBridges[0]!.vendorId).toBe(0x1022);
    expect(notes.filter((n) => n.what === 'kind').map((n) => n.bdf)).toEqual([
      '0000:00:01.1',
      '0000:01:00.0',
      '0000:02:00.0',
      '0000:02:01.0',
    ]);
    // The matrix of the two named devices: switch-local, but the ACS below the switch is unknown and
    // the CPU is inferred as AMD from the host bridge without a family: it depends, and says on what.
    const m = p2pMatrix(topology, { devices: ['0000:03:00.0', '0000:04:00.0'] });
    expect(m.cpu.source).toBe(
      'inferred: every host bridge is AMD (1022), so the CPU is AMD (family unknown)',
    );
    const p = m.detail(0, 1);
    expect([p.mapType, p.distance, p.certainty]).toEqual(['bus-address', 4, 'depends']);
    expect(p.outcomes.map((o) => o.mapType)).toEqual(['bus-address', 'through-host-bridge', 'not-supported']);
  });

  test('-t (no names): the same tree, IDs unknown', () => {
    const bare = TVNN.replace(/(\.[0-7](?:-\[[0-9a-f-]+\])?-*) {2}.*$/gm, '$1');
    const { topology } = importLspci({ tree: bare });
    expect(topology.functions.size).toBe(9);
    expect(topology.functions.get('0000:03:00.0')!.vendorId).toBeUndefined();
    expect(topology.functions.get('0000:04:00.0')!.parent).toBe('0000:02:01.0');
  });
});

const PLAIN = `00:01.0 PCI bridge: Intel Corporation Device 347a (rev 04) (prog-if 00 [Normal decode])
	Bus: primary=00, secondary=01, subordinate=01, sec-latency=0
	Capabilities: [40] Express (v2) Root Port (Slot+), MSI 00
	Capabilities: [110 v1] Access Control Services
		ACSCap:	SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
		ACSCtl:	SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-

01:00.0 3D controller: NVIDIA Corporation GA100 [A100 PCIe 40GB] (rev a1)
	Control: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
	Status: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
	Region 0: Memory at fa000000 (32-bit, non-prefetchable)
	Region 1: Memory at 38000000000 (64-bit, prefetchable) [size=64G]
	Capabilities: [60] Express (v2) Endpoint, MSI 00
`;

describe('a verbose listing', () => {
  test('-vvv without -nn: classes from their names, IDs unknown with a note to rerun with -nn; a BAR without [size=] kept', () => {
    const { topology, notes } = importLspci({ verbose: PLAIN, verboseFile: 'vvv.txt' });
    const gpu = topology.functions.get('0000:01:00.0')!;
    expect([gpu.classCode, gpu.vendorId, gpu.parent]).toEqual([0x030200, undefined, '0000:00:01.0']);
    expect(gpu.bars).toEqual([
      {
        index: 0,
        cpuAddress: 0xfa000000n,
        size: 0n,
        prefetchable: false,
        is64: false,
        io: false,
        sizeUnknown: true,
      },
      { index: 1, cpuAddress: 0x380_0000_0000n, size: 64n << 30n, prefetchable: true, is64: true, io: false },
    ]);
    expect(notes.find((n) => n.what === 'ids')?.why).toBe(
      'vvv.txt has no [vendor:device] IDs (lspci without -nn); the host-bridge allowlist needs them: rerun lspci with -nn',
    );
    expect(notes.find((n) => n.what === 'bars')).toEqual({
      bdf: '0000:01:00.0',
      what: 'bars',
      why: 'Region 0: lspci printed no [size=] (run as root): size unknown',
    });
  });

  test('a grep of the ACS lines: control known, capability taken as every bit', () => {
    const grep = `0000:00:01.0 PCI bridge [0604]: Intel Corporation Device [8086:347a] (rev 04)
		ACSCtl:	SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
0000:00:03.0 PCI bridge [0604]: Intel Corporation Device [8086:347b] (rev 04)
		ACSCtl:	SrcValid- TransBlk- ReqRedir- CmpltRedir- UpstreamFwd- EgressCtrl- DirectTrans-
`;
    const { topology } = importLspci({ verbose: grep });
    const acs = topology.functions.get('0000:00:01.0')!.acs;
    expect(
      acs.kind === 'known' && [acsBitsToRegister(acs.capability), acsBitsToRegister(acs.control)],
    ).toEqual([0x7f, 0x1d]);
  });
});

describe('mangled posts are located errors', () => {
  test('a BDF twice in the verbose listing', () => {
    const twice = `${PLAIN}\n${PLAIN}`;
    const e = caught(() => importLspci({ verbose: twice, verboseFile: 'v.txt' }));
    expect(e.errno).toBe('EINVAL');
    expect(e.location).toEqual({ file: 'v.txt', line: 15 });
    expect(e.reason).toBe('0000:00:01.0 appears twice (first on line 1); two captures pasted together?');
  });

  test('a BDF twice in the tree', () => {
    const e = caught(() => parseLspciTree(`${TVNN}${TVNN}`, 't.txt'));
    expect(e.location?.line).toBe(6);
    expect(e.reason).toMatch(/^0000:00:00\.0 appears twice in the tree \(first on line 1\)/);
  });

  test.each([
    [' \\-[0000:00]-+-01.0-[01', /ends inside a bracket \(a truncated line\?\)/, 1],
    ['-[0000:00]-+-01.0-[01]----00', /ends in the middle of a device number/, 1],
    ['-[0000:00]-+-01.0-[01]----[02]----00.0  x', /bridge bus range \[02\] with no device number/, 1],
  ])('%s', (line, reason, lineNo) => {
    const e = caught(() => parseLspciTree(line, 't.txt'));
    expect(e.errno).toBe('EINVAL');
    expect(e.location?.file).toBe('t.txt');
    expect(e.location?.line).toBe(lineNo);
    expect(e.reason).toMatch(reason);
  });
});

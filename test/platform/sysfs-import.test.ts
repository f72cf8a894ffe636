/**
 * The sysfs importer on a live-style tree built here: links into sys/devices, 4096-byte config with
 * ACS, iommu_group links; and malformed captures that must name file, line and what was expected.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterEach, describe, expect } from 'vitest';
import { formatError, isPhysrError } from '../../src/core/index.ts';
import {
  type AcsBits,
  acsBitsFromRegister,
  acsBitsToRegister,
  buildConfig,
  type ConfigImage,
  decodeConfig,
  importSysfs,
  parseCpuInfo,
  parseResourceFile,
} from '../../src/platform/index.ts';

const ALL: AcsBits = acsBitsFromRegister(0x7f);
const REDIRECT_ON: AcsBits = acsBitsFromRegister(0x1d); // SV RR CR UF

interface FakeFn {
  readonly path: string; // e.g. 'pci0000:00/0000:00:01.0/0000:01:00.0'
  readonly config: ConfigImage;
  readonly resource?: string;
  readonly group?: number;
  readonly numa?: number;
}

const RES_ZERO = '0x0000000000000000 0x0000000000000000 0x0000000000000000\n';
function resource(lines: string[]): string {
  const all = [...lines];
  while (all.length < 13) all.push(RES_ZERO.trimEnd());
  return `${all.join('\n')}\n`;
}

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function makeSysfs(fns: readonly FakeFn[], cpuinfo?: string): string {
  const root = mkdtempSync(join(tmpdir(), 'physr-sysfs-'));
  dirs.push(root);
  const bus = join(root, 'sys', 'bus', 'pci', 'devices');
  mkdirSync(bus, { recursive: true });
  for (const fn of fns) {
    const real = join(root, 'sys', 'devices', fn.path);
    mkdirSync(real, { recursive: true });
    const bdf = fn.path.split('/').at(-1)!;
    const hex = (v: number, w: number): string => `0x${v.toString(16).padStart(w, '0')}\n`;
    writeFileSync(join(real, 'vendor'), hex(fn.config.vendorId, 4));
    writeFileSync(join(real, 'device'), hex(fn.config.deviceId, 4));
    writeFileSync(join(real, 'class'), hex(fn.config.classCode, 6));
    writeFileSync(join(real, 'config'), buildConfig(fn.config));
    writeFileSync(join(real, 'numa_node'), `${fn.numa ?? -1}\n`);
    writeFileSync(join(real, 'resource'), fn.resource ?? resource([]));
    if (fn.group !== undefined) {
      const groupDir = join(root, 'sys', 'kernel', 'iommu_groups', String(fn.group), 'devices');
      mkdirSync(groupDir, { recursive: true });
      symlinkSync(`../../../../devices/${fn.path}`, join(groupDir, bdf));
      symlinkSync(`../../../kernel/iommu_groups/${fn.group}`, join(real, 'iommu_group'));
    }
    symlinkSync(`../../../devices/${fn.path}`, join(bus, bdf));
  }
  if (cpuinfo !== undefined) {
    mkdirSync(join(root, 'proc'));
    writeFileSync(join(root, 'proc', 'cpuinfo'), cpuinfo);
  }
  return root;
}

/** A server: root port → switch (upstream, two downstream) → GPU and NIC, each in its own group. */
function serverFns(): FakeFn[] {
  const port = (
    bdf: string,
    type: 'root-port' | 'upstream-port' | 'downstream-port',
    sec: number,
    sub: number,
    acs = true,
  ): ConfigImage => ({
    length: 4096,
    vendorId: type === 'root-port' ? 0x8086 : 0x10b5,
    deviceId: type === 'root-port' ? 0x347a : 0x8796,
    classCode: 0x060400,
    headerType: 1,
    primaryBus: Number.parseInt(bdf.split(':')[1]!, 16),
    secondaryBus: sec,
    subordinateBus: sub,
    pcieType: type,
    ...(acs ? { acs: { capability: ALL, control: REDIRECT_ON }, aerFirst: true } : {}),
  });
  return [
    {
      path: 'pci0000:00/0000:00:00.0',
      config: { length: 4096, vendorId: 0x8086, deviceId: 0x09a2, classCode: 0x060000 },
    },
    { path: 'pci0000:00/0000:00:01.0', config: port('0000:00:01.0', 'root-port', 1, 4), group: 1, numa: 0 },
    {
      path: 'pci0000:00/0000:00:01.0/0000:01:00.0',
      config: port('0000:01:00.0', 'upstream-port', 2, 4, false),
      group: 2,
    },
    {
      path: 'pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0',
      config: port('0000:02:00.0', 'downstream-port', 3, 3),
      group: 3,
    },
    {
      path: 'pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0',
      config: port('0000:02:01.0', 'downstream-port', 4, 4),
      group: 4,
    },
    {
      path: 'pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0',
      config: {
        length: 4096,
        vendorId: 0x10de,
        deviceId: 0x20b0,
        classCode: 0x030200,
        pcieType: 'endpoint',
        bars: [
          { index: 0, busAddress: 0xa000_0000n, is64: false, prefetchable: false, io: false },
          { index: 1, busAddress: 0x380_0000_0000n, is64: true, prefetchable: true, io: false },
        ],
      },
      resource: resource([
        '0x00000000a0000000 0x00000000a0ffffff 0x0000000000040200',
        '0x0000038000000000 0x00000387ffffffff 0x000000000014220c',
      ]),
      group: 5,
      numa: 0,
    },
    {
      path: 'pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:04:00.0',
      config: {
        length: 256,
        vendorId: 0x15b3,
        deviceId: 0x101b,
        classCode: 0x020000,
        pcieType: 'endpoint',
        multifunction: true,
      },
      resource: resource(['0x000003fffe000000 0x000003ffffffffff 0x000000000014220c']),
      group: 6,
      numa: 0,
    },
  ];
}

describe('importSysfs on a live-style tree', () => {
  test('hierarchy from the links, kinds from the PCIe capability, ACS from extended config', () => {
    const root = makeSysfs(serverFns(), 'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\n');
    const { topology, notes } = importSysfs(root);
    const f = (bdf: string) => topology.functions.get(bdf)!;
    expect([...topology.functions.keys()]).toEqual([
      '0000:00:00.0',
      '0000:00:01.0',
      '0000:01:00.0',
      '0000:02:00.0',
      '0000:02:01.0',
      '0000:03:00.0',
      '0000:04:00.0',
    ]);
    expect(f('0000:00:00.0').kind).toBe('host-bridge-device');
    expect(f('0000:00:01.0').kind).toBe('root-port');
    expect(f('0000:01:00.0').kind).toBe('switch-upstream');
    expect(f('0000:02:01.0').kind).toBe('switch-downstream');
    expect(f('0000:03:00.0').kind).toBe('endpoint');
    expect(f('0000:03:00.0').parent).toBe('0000:02:00.0');
    expect(f('0000:02:00.0').parent).toBe('0000:01:00.0');
    expect(f('0000:00:01.0').parent).toBeUndefined();
    expect(f('0000:00:01.0').acs).toEqual({ kind: 'known', capability: ALL, control: REDIRECT_ON });
    expect(f('0000:01:00.0').acs).toEqual({ kind: 'absent' });
    expect(f('0000:04:00.0').acs).toEqual({
      kind: 'unknown',
      why: 'config has 256 bytes; extended capabilities absent',
    });
    expect(f('0000:04:00.0').multifunction).toBe(true);
    expect(f('0000:03:00.0').reportedIommuGroup).toBe(5);
    expect(f('0000:03:00.0').bars[1]).toEqual({
      index: 1,
      cpuAddress: 0x380_0000_0000n,
      size: 32n << 30n,
      prefetchable: true,
      is64: true,
      io: false,
    });
    expect(topology.hostBridges).toEqual([
      {
        id: 'pci0000:00',
        segment: 0,
        busStart: 0,
        busEnd: 4,
        vendorId: 0x8086,
        deviceId: 0x09a2,
        busOffset: 0n,
        numaNode: 0,
      },
    ]);
    expect(topology.cpu).toEqual({ vendor: 'amd', family: 25 });
    expect(notes.filter((n) => n.what === 'acs').map((n) => n.bdf)).toEqual(['0000:04:00.0']);
  });

  test('a CPU-to-bus offset shows where resource and BAR register differ', () => {
    const fns = serverFns();
    const gpu = fns[5]!;
    fns[5] = {
      ...gpu,
      resource: resource([
        '0x00000040a0000000 0x00000040a0ffffff 0x0000000000040200',
        '0x000003c000000000 0x000003c7ffffffff 0x000000000014220c',
      ]),
    };
    const { topology } = importSysfs(makeSysfs(fns));
    expect(topology.hostBridges[0]!.busOffset).toBe(0x40_0000_0000n);
    expect(topology.cpu).toEqual({ vendor: 'unknown', family: undefined });
  });
});

describe('malformed captures', () => {
  const expectEinval = (fn: () => unknown, pattern: RegExp): void => {
    try {
      fn();
    } catch (error) {
      expect(isPhysrError(error, 'EINVAL')).toBe(true);
      if (isPhysrError(error)) expect(formatError(error)).toMatch(pattern);
      return;
    }
    throw new Error('expected a PhysrError');
  };

  test('a truncated config file says its length', () => {
    const root = makeSysfs(serverFns());
    writeFileSync(join(root, 'sys', 'devices', 'pci0000:00', '0000:00:01.0', 'config'), new Uint8Array(100));
    expectEinval(
      () => importSysfs(root),
      /0000:00:01\.0\/config: EINVAL: config has 100 bytes; expected 64, 256 or 4096/,
    );
  });

  test('a bad resource line names file, line and the expected form', () => {
    const fns = serverFns();
    fns[5] = { ...fns[5]!, resource: resource([RES_ZERO.trimEnd(), RES_ZERO.trimEnd(), '0x1000 0x1fff']) };
    const root = makeSysfs(fns);
    expectEinval(
      () => importSysfs(root),
      /0000:03:00\.0\/resource:3: EINVAL: expected "0x\.\.\. 0x\.\.\. 0x\.\.\." \(start end flags\), found "0x1000 0x1fff"/,
    );
  });

  test('a resource file cut short says where it ends', () => {
    expectEinval(
      () => parseResourceFile(`${RES_ZERO}${RES_ZERO}`, 'dev/resource'),
      /dev\/resource:3: EINVAL: expected .* for BAR 2; the file ends after 2 lines/,
    );
  });

  test('resource end below start is refused', () => {
    expectEinval(
      () => parseResourceFile(resource(['0x0000000000002000 0x0000000000001000 0x0000000000000200']), 'r'),
      /r:1: .*below its start/,
    );
  });

  test('a non-hex vendor file', () => {
    const root = makeSysfs(serverFns());
    writeFileSync(join(root, 'sys', 'devices', 'pci0000:00', '0000:00:00.0', 'vendor'), 'intel\n');
    expectEinval(
      () => importSysfs(root),
      /0000:00:00\.0\/vendor:1: EINVAL: expected a hex number like 0x8086, found "intel"/,
    );
  });

  test('a device entry that is not a PCI address', () => {
    const root = makeSysfs(serverFns());
    mkdirSync(join(root, 'sys', 'bus', 'pci', 'devices', 'bogus'));
    expectEinval(() => importSysfs(root), /devices\/bogus: name: EINVAL: 'bogus' is not a PCI address/);
  });

  test('config space of an absent function (all ones)', () => {
    expectEinval(
      () => decodeConfig(new Uint8Array(64).fill(0xff), { file: 'c' }),
      /c: EINVAL: config vendor ID is 0xffff/,
    );
  });

  test('a directory that is not sysfs', () => {
    const root = mkdtempSync(join(tmpdir(), 'physr-empty-'));
    dirs.push(root);
    expectEinval(() => importSysfs(root), /expected a directory laid out like \/sys/);
    try {
      importSysfs(join(root, 'nope'));
    } catch (error) {
      expect(isPhysrError(error, 'ENOENT')).toBe(true);
    }
  });

  test('a live sysfs without a PCI bus imports as empty and says so; a capture without one is an error', () => {
    const root = mkdtempSync(join(tmpdir(), 'physr-nopci-'));
    dirs.push(root);
    mkdirSync(join(root, 'devices'));
    const { topology, notes } = importSysfs(root, { live: true });
    expect(topology.functions.size).toBe(0);
    expect(notes.map((n) => n.what)).toContain('pci');
    expect(() => importSysfs(root)).toThrow(
      /no sys\/bus\/pci\/devices \(hwloc-gather-topology captures PCI only with --io\)/,
    );
  });
});

describe('config decoding', () => {
  test.prop([fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 0x7f }), fc.boolean()])(
    'ACS registers round-trip through a 4096-byte config, wherever the capability sits',
    (cap, ctl, aerFirst) => {
      const bytes = buildConfig({
        length: 4096,
        vendorId: 0x8086,
        deviceId: 1,
        classCode: 0x060400,
        headerType: 1,
        pcieType: 'downstream-port',
        acs: { capability: acsBitsFromRegister(cap), control: acsBitsFromRegister(ctl) },
        aerFirst,
      });
      const decoded = decodeConfig(bytes);
      expect(decoded.acs.kind).toBe('known');
      if (decoded.acs.kind === 'known') {
        expect(acsBitsToRegister(decoded.acs.capability)).toBe(cap);
        expect(acsBitsToRegister(decoded.acs.control)).toBe(ctl);
      }
      expect(decoded.pcieType).toBe('downstream-port');
    },
  );

  test.prop([fc.bigInt({ min: 1n, max: (1n << 60n) - 1n }), fc.boolean()])(
    '64-bit BAR registers keep every bit',
    (raw, pf) => {
      const busAddress = raw << 4n;
      const decoded = decodeConfig(
        buildConfig({
          length: 64,
          vendorId: 1,
          deviceId: 2,
          classCode: 0x020000,
          bars: [{ index: 2, busAddress, is64: true, prefetchable: pf, io: false }],
        }),
      );
      expect(decoded.bars).toEqual([{ index: 2, busAddress, is64: true, prefetchable: pf, io: false }]);
    },
  );

  test('64-byte config: capabilities beyond the header are unknown, not absent', () => {
    const bytes = buildConfig({
      length: 256,
      vendorId: 1,
      deviceId: 2,
      classCode: 0x020000,
      pcieType: 'endpoint',
    });
    const short = decodeConfig(bytes.slice(0, 64));
    expect(short.capabilities).toBeUndefined();
    expect(short.isPcie).toBeUndefined();
    expect(short.acs).toEqual({ kind: 'unknown', why: 'config has 64 bytes; extended capabilities absent' });
    expect(decodeConfig(bytes).pcieType).toBe('endpoint');
  });

  test('a conventional function (no Express, no PCI-X Mode 2 capability) has no ACS; the rest stay unknown', () => {
    // pci_cfg_space_size (drivers/pci/probe.c): only host bridges, PCIe and PCI-X Mode 2 functions
    // have the 4096-byte space that ACS lives in.
    const withCaps = (classCode: number, pcixStatus?: number): Uint8Array => {
      const bytes = buildConfig({ length: 256, vendorId: 0x1af4, deviceId: 0x1000, classCode });
      const view = new DataView(bytes.buffer);
      view.setUint16(0x06, 0x10, true); // capability list present
      view.setUint8(0x34, 0x40);
      view.setUint8(0x40, pcixStatus === undefined ? 0x05 : 0x07); // MSI, or PCI-X
      if (pcixStatus !== undefined) view.setUint32(0x44, pcixStatus, true);
      return bytes;
    };
    const unknown256 = { kind: 'unknown', why: 'config has 256 bytes; extended capabilities absent' };
    expect(decodeConfig(withCaps(0x020000)).acs).toEqual({ kind: 'absent' });
    // No capability list at all, even in a 64-byte dump: not PCIe (its Express capability is mandatory).
    const bare = buildConfig({ length: 64, vendorId: 0x8086, deviceId: 0x7010, classCode: 0x010180 });
    expect(decodeConfig(bare).acs).toEqual({ kind: 'absent' });
    expect(decodeConfig(withCaps(0x020000, 0x0001_0000)).acs).toEqual({ kind: 'absent' }); // PCI-X 133
    expect(decodeConfig(withCaps(0x020000, 0x4000_0000)).acs).toEqual(unknown256); // PCI-X 266
    expect(decodeConfig(withCaps(0x060000)).acs).toEqual(unknown256); // host bridge
    const pcie = buildConfig({
      length: 256,
      vendorId: 1,
      deviceId: 2,
      classCode: 0x020000,
      pcieType: 'endpoint',
    });
    expect(decodeConfig(pcie).acs).toEqual(unknown256);
  });

  test('cpuinfo: vendors and families', () => {
    expect(parseCpuInfo('vendor_id\t: GenuineIntel\ncpu family\t: 6\n')).toEqual({
      vendor: 'intel',
      family: 6,
    });
    expect(parseCpuInfo('processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\n')).toEqual({
      vendor: 'arm',
      family: undefined,
    });
    expect(parseCpuInfo('vendor_id\t: HygonGenuine\ncpu family\t: 24\n')).toEqual({
      vendor: 'unknown',
      family: undefined,
    });
  });
});

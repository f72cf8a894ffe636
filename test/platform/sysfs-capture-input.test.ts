/**
 * The sysfs importer on captures as people make them: the gpu-vm-6.18 snapshot (links copied as
 * files holding the link text), directories at the wrong level, files where sysfs has directories,
 * and a snapshot missing a bridge. Each bad shape is one located error with the kernel's errno.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { Errno } from '../../src/core/index.ts';
import { buildConfig, importSysfs } from '../../src/platform/index.ts';
import { caughtPhysrError } from '../errno.ts';

const GPU_VM = '/work/shared/data/captures/gpu-vm-6.18/snap';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

const caught = caughtPhysrError;

function expectLocated(fn: () => unknown, errno: Errno, file: string, reason: RegExp): void {
  const error = caught(fn);
  expect(error.errno).toBe(errno);
  expect(error.location?.file).toBe(file);
  expect(error.reason).toMatch(reason);
}

describe('gpu-vm-6.18 capture (bus/pci/devices entries are files holding the link text)', () => {
  test('every function with the IDs, classes and BARs the capture holds; no IOMMU', () => {
    const { topology, notes, iommu } = importSysfs(GPU_VM);
    const ids = [...topology.functions.values()].map((f) => [
      f.bdf,
      f.vendorId?.toString(16),
      f.deviceId?.toString(16),
      f.classCode?.toString(16).padStart(6, '0'),
      f.kind,
    ]);
    expect(ids).toEqual([
      ['0000:00:00.0', '8086', 'd57', '060000', 'host-bridge-device'],
      ['0000:00:01.0', '1af4', '1042', '018000', 'endpoint'],
      ['0000:00:02.0', '1af4', '1042', '018000', 'endpoint'],
      ['0000:00:03.0', '1af4', '1041', '020000', 'endpoint'],
      ['0000:00:04.0', '1af4', '1053', 'ffff00', 'endpoint'],
      ['0000:00:05.0', '1af4', '1044', 'ffff00', 'endpoint'],
      ['0000:00:06.0', '10de', '2335', '030200', 'endpoint'],
    ]);
    // README: the H200 has BAR0 16M, BAR2 256G, BAR4 32M.
    const gpu = topology.functions.get('0000:00:06.0')!;
    expect(gpu.bars.map((b) => [b.index, b.size])).toEqual([
      [0, 16n << 20n],
      [2, 256n << 30n],
      [4, 32n << 20n],
    ]);
    expect(gpu.bars.every((b) => b.is64 && b.prefetchable && !b.io)).toBe(true);
    expect(topology.hostBridges.map((h) => [h.id, h.vendorId, h.deviceId])).toEqual([
      ['pci0000:00', 0x8086, 0x0d57],
    ]);
    expect(topology.cpu.vendor).toBe('intel');
    expect(iommu).toBe('absent');
    expect(notes.filter((n) => n.what === 'config')).toEqual([]);
  });
});

describe('capture input at the wrong place is one located error', () => {
  test.each([
    ['sys/bus/pci/devices', 'sys/bus/pci/devices'],
    ['sys/bus/pci', 'sys/bus/pci'],
    ['sys/bus', 'sys/bus'],
  ])('--sysfs %s names the sysfs root to give', (sub, looks) => {
    const dir = join(GPU_VM, sub);
    const error = caught(() => importSysfs(dir));
    expect(error.errno).toBe('EINVAL');
    expect(error.location?.file).toBe(dir);
    expect(error.reason).toBe(
      `this looks like ${looks}${looks.endsWith('devices') ? ' (or a root bus directory)' : ''}; give the sysfs root ${join(GPU_VM, 'sys')} instead`,
    );
  });

  test('--sysfs /proc: bus/pci/devices is a file there (ENOTDIR)', () => {
    expectLocated(() => importSysfs('/proc'), 'ENOTDIR', '/proc/bus/pci/devices', /is not a directory/);
  });

  test('sys/bus/pci/devices a file, or an IOMMU group’s devices a file: ENOTDIR at that path', () => {
    const root = mkdtempSync(join(tmpdir(), 'physr-notdir-'));
    dirs.push(root);
    mkdirSync(join(root, 'sys', 'bus', 'pci'), { recursive: true });
    writeFileSync(join(root, 'sys', 'bus', 'pci', 'devices'), 'oops\n');
    const devices = join(root, 'sys', 'bus', 'pci', 'devices');
    expectLocated(() => importSysfs(root), 'ENOTDIR', devices, /is not a directory/);

    rmSync(devices);
    mkdirSync(devices);
    mkdirSync(join(root, 'sys', 'kernel', 'iommu_groups', '3'), { recursive: true });
    const groupDevices = join(root, 'sys', 'kernel', 'iommu_groups', '3', 'devices');
    writeFileSync(groupDevices, '');
    expectLocated(() => importSysfs(root), 'ENOTDIR', groupDevices, /IOMMU group 3 devices/);
  });

  test('a device entry holding text that names no directory is ENOTDIR at line 1', () => {
    const root = mkdtempSync(join(tmpdir(), 'physr-badlink-'));
    dirs.push(root);
    const devices = join(root, 'sys', 'bus', 'pci', 'devices');
    mkdirSync(devices, { recursive: true });
    writeFileSync(join(devices, '0000:00:01.0'), '../../../devices/pci0000:00/0000:00:01.0\n');
    const error = caught(() => importSysfs(root));
    expect(error.errno).toBe('ENOTDIR');
    expect(error.location).toEqual({ file: join(devices, '0000:00:01.0'), line: 1 });
  });
});

describe('a snapshot that omits a bridge', () => {
  test('its function is placed by its sysfs path under the nearest listed bridge, never an invented host', () => {
    const root = mkdtempSync(join(tmpdir(), 'physr-missing-'));
    dirs.push(root);
    const bus = join(root, 'sys', 'bus', 'pci', 'devices');
    mkdirSync(bus, { recursive: true });
    // 00:01.0 root port -> 01:00.0 switch upstream (NOT listed) -> 02:00.0 downstream -> 03:00.0 NVMe
    const paths = [
      ['pci0000:00/0000:00:01.0', 0x060400, 1],
      ['pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0', 0x060400, 1],
      ['pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0', 0x010802, 0],
    ] as const;
    for (const [path, classCode, headerType] of paths) {
      const real = join(root, 'sys', 'devices', path);
      mkdirSync(real, { recursive: true });
      const config = buildConfig({ length: 64, vendorId: 0x8086, deviceId: 0x1234, classCode, headerType });
      writeFileSync(join(real, 'config'), config);
      symlinkSync(real, join(bus, path.split('/').at(-1)!));
    }
    const { topology, notes } = importSysfs(root);
    expect([...topology.functions.values()].map((f) => [f.bdf, f.parent, f.hostBridge])).toEqual([
      ['0000:00:01.0', undefined, 'pci0000:00'],
      ['0000:02:00.0', '0000:00:01.0', 'pci0000:00'],
      ['0000:03:00.0', '0000:02:00.0', 'pci0000:00'],
    ]);
    expect(topology.hostBridges.map((h) => h.id)).toEqual(['pci0000:00']);
    expect(notes.filter((n) => n.what === 'hierarchy').map((n) => n.bdf)).toEqual([
      '0000:02:00.0',
      '0000:03:00.0',
    ]);
  });
});

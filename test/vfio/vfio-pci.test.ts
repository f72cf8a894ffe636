import { describe, expect, it } from 'vitest';
import type { DmaBufAttachment, DmaBufImporterOps } from '../../src/dmabuf/index.ts';
import { twoSocketServer } from '../../src/platform/index.ts';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, VfioPciDevice } from '../../src/vfio/index.ts';
import { FakeDevice } from '../dmabuf/fake-device.ts';
import { errnoOf } from '../errno.ts';

const topology = twoSocketServer();
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const BAR1 = 0x200_0000_0000n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;

function importer(log: string[]): DmaBufImporterOps {
  return {
    allowPeer2peer: true,
    invalidateMappings(att: DmaBufAttachment) {
      log.push(att.dmabuf.revoked ? 'revoked' : 'restored');
      for (const m of att.mappings) att.dmabuf.unmap(m);
    },
  };
}

const gpu = () => new VfioPciDevice({ topology, bdf: GPU });

describe('VFIO_DEVICE_FEATURE_DMA_BUF validation', () => {
  it('exports page-aligned ranges inside a memory BAR as one physical list', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({
      regionIndex: 1,
      ranges: [
        { offset: 0n, length: 2n * MiB },
        { offset: GiB, length: 0x1000n },
      ],
    });
    expect(buf.size).toBe(2n * MiB + 0x1000n);
    expect(buf.revoked).toBe(false);
    expect(dev.dmaBufs[0]!.phys.toArray()).toEqual([
      { address: BAR1, length: 2n * MiB },
      { address: BAR1 + GiB, length: 0x1000n },
    ]);
  });

  it('refuses as vfio_pci_dmabuf.c does', () => {
    const dev = gpu();
    const ok = { offset: 0n, length: 0x1000n };
    expect(errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [] }))).toBe('EINVAL');
    expect(errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [ok], flags: 1 }))).toBe('EINVAL');
    expect(errnoOf(() => dev.exportDmaBuf({ regionIndex: 6, ranges: [ok] }))).toBe('ENODEV');
    expect(
      errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0x800n, length: 0x1000n }] })),
    ).toBe('EINVAL');
    expect(
      errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1800n }] })),
    ).toBe('EINVAL');
    expect(errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0n }] }))).toBe(
      'EINVAL',
    );
    // BAR 2 is the upper half of the 64-bit BAR 1: not implemented on its own.
    expect(errnoOf(() => dev.exportDmaBuf({ regionIndex: 2, ranges: [ok] }))).toBe('EINVAL');
    // Past the end of the 32 GiB BAR.
    expect(
      errnoOf(() =>
        dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 32n * GiB - 0x1000n, length: 0x2000n }] }),
      ),
    ).toBe('EINVAL');
    expect(
      errnoOf(() =>
        dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: (1n << 64n) - 0x1000n, length: 0x1000n }] }),
      ),
    ).toBe('EOVERFLOW');
    // validate_dmabuf_input: a total length with bit 63 (DMA_IOVA_USE_SWIOTLB) set is EINVAL before
    // any range is checked against the BAR (else the first range here would be EOVERFLOW).
    expect(
      errnoOf(() =>
        dev.exportDmaBuf({
          regionIndex: 1,
          ranges: [
            { offset: (1n << 64n) - 0x1000n, length: 0x1000n },
            { offset: 0n, length: 1n << 63n },
          ],
        }),
      ),
    ).toBe('EINVAL');
    expect(dev.dmaBufs.length).toBe(0);
  });

  it('a 4 GiB+ range is one physical range (no 32-bit segment chopping)', () => {
    const buf = gpu().exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 8n * GiB }] });
    expect(buf.size).toBe(8n * GiB);
  });

  it('importers must allow peer2peer; iommufd interconnect needs a single range', () => {
    const dev = gpu();
    const two = dev.exportDmaBuf({
      regionIndex: 1,
      ranges: [
        { offset: 0n, length: 0x1000n },
        { offset: 0x2000n, length: 0x1000n },
      ],
    });
    expect(errnoOf(() => two.attach(new FakeDevice('static', NIC)))).toBe('EOPNOTSUPP');
    const att = two.attach(new FakeDevice('iommufd', undefined), importer([]));
    expect(errnoOf(() => two.privatePhys(att))).toBe('EOPNOTSUPP');
    const one = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0x4000n, length: 0x1000n }] });
    const att1 = one.attach(new FakeDevice('iommufd', undefined), importer([]));
    expect(one.privatePhys(att1).addressAt(0)).toBe(BAR1 + 0x4000n);
  });

  it('a revoked export still answers a non-peer2peer importer with EOPNOTSUPP, a peer2peer one with ENODEV', () => {
    // vfio_pci_dma_buf_attach checks peer2peer before its revoked bit.
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    dev.configWrite(PCI_COMMAND, PCI_COMMAND_MASTER);
    expect(buf.revoked).toBe(true);
    expect(errnoOf(() => buf.attach(new FakeDevice('static', NIC)))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => buf.attach(new FakeDevice('iommufd', undefined), importer([])))).toBe('ENODEV');
  });
});

describe('revocation', () => {
  it('clearing PCI_COMMAND_MEMORY revokes (importers unmap), setting it restores (they may map again)', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 4n * MiB }] });
    const log: string[] = [];
    const nic = new FakeDevice('nic', NIC);
    const att = buf.attach(nic, importer(log));
    buf.map(att, 'FROM_DEVICE');
    const off = dev.configWrite(PCI_COMMAND, PCI_COMMAND_MASTER);
    expect(off.revoked.length).toBe(1);
    expect(off.restored).toEqual([]);
    expect(buf.revoked).toBe(true);
    expect(nic.live.size).toBe(0);
    expect(errnoOf(() => buf.map(att, 'FROM_DEVICE'))).toBe('ENODEV');
    // An export made while memory is off starts revoked.
    const late = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    expect(late.revoked).toBe(true);
    const on = dev.configWrite(PCI_COMMAND, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
    expect(on.restored.length).toBe(2);
    expect(log).toEqual(['revoked', 'restored']);
    expect(buf.map(att, 'FROM_DEVICE').ranges.addressAt(0)).toBe(BAR1);
    // A write that leaves memory on does not revoke.
    expect(dev.configWrite(PCI_COMMAND, PCI_COMMAND_MEMORY).revoked.length).toBe(0);
  });

  it('FLR revokes then restores when memory stays enabled; D3hot revokes until D0', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 4n * MiB }] });
    const log: string[] = [];
    buf.attach(new FakeDevice('nic', NIC), importer(log));
    const r = dev.reset();
    expect(r.revoked.length).toBe(1);
    expect(r.restored.length).toBe(1);
    expect(buf.revoked).toBe(false);
    expect(log).toEqual(['revoked', 'restored']);
    dev.setPowerState('D3hot');
    expect(buf.revoked).toBe(true);
    dev.setPowerState('D0');
    expect(buf.revoked).toBe(false);
  });

  it('a reset from D3hot brings the function to D0 first and restores the exports (vfio_pci_core_ioctl_reset)', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 4n * MiB }] });
    const log: string[] = [];
    buf.attach(new FakeDevice('nic', NIC), importer(log));
    dev.setPowerState('D3hot');
    expect(log).toEqual(['revoked']);
    // vfio_pci_set_power_state(vdev, PCI_D0) before the revoke and the FLR: memory is on afterwards.
    const r = dev.reset();
    expect(dev.powerState).toBe('D0');
    expect(r.revoked).toEqual([]); // already revoked: vfio_pci_dma_buf_move skips it
    expect(r.restored).toEqual([buf.describe()]);
    expect(buf.revoked).toBe(false);
    expect(log).toEqual(['revoked', 'restored']);
  });

  it('attach needs a revocable importer (dma_buf_attach_revocable, 7.1): a pinned importer is EOPNOTSUPP', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    expect(errnoOf(() => buf.attach(new FakeDevice('pinned', NIC), { allowPeer2peer: true }))).toBe(
      'EOPNOTSUPP',
    );
    // The exporter has no pin op: dma_buf_pin of a revocable importer succeeds without one.
    const att = buf.attach(new FakeDevice('nic', NIC), importer([]));
    buf.pin(att);
    expect(att.pinCount).toBe(1);
    buf.unpin(att);
  });

  it('FLR with memory disabled leaves the export revoked', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    dev.configWrite(PCI_COMMAND, 0);
    dev.reset();
    expect(buf.revoked).toBe(true);
  });

  it('closing an already revoked export tells the importers again (vfio_pci_dma_buf_cleanup)', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    const log: string[] = [];
    const att = buf.attach(new FakeDevice('nic', NIC), importer(log));
    dev.configWrite(PCI_COMMAND, 0);
    expect(log).toEqual(['revoked']);
    const report = dev.close();
    expect(log).toEqual(['revoked', 'revoked']);
    expect(report.revoked).toHaveLength(1);
    expect(report.revoked[0]!.report.changed).toBe(false);
    expect(report.revoked[0]!.report.notified).toEqual([att.describe()]);
    buf.detach(att);
    buf.put();
  });

  it('closing the device revokes for good; the buffer outlives the device', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    const att = buf.attach(new FakeDevice('nic', NIC), importer([]));
    const report = dev.close();
    expect(report.revoked.length).toBe(1);
    expect(report.revoked[0]!.report.notified).toEqual([att.describe()]);
    expect(buf.revoked).toBe(true);
    expect(errnoOf(() => dev.configWrite(PCI_COMMAND, PCI_COMMAND_MEMORY))).toBe('ENODEV');
    expect(
      errnoOf(() => dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] })),
    ).toBe('ENODEV');
    expect(errnoOf(() => buf.map(att, 'TO_DEVICE'))).toBe('ENODEV');
    buf.detach(att);
    buf.put();
    expect(buf.released).toBe(true);
  });

  it('closing the dma-buf file (last reference) drops it from the device list', () => {
    const dev = gpu();
    const buf = dev.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 0x1000n }] });
    buf.put();
    expect(dev.dmaBufs.length).toBe(0);
    expect(dev.reset().revoked.length).toBe(0);
  });
});

describe('BAR mmap', () => {
  it('is PFN-mapped and faults while memory decoding is off', () => {
    const dev = gpu();
    const vma = dev.mmapBar(1, 0n, 2n * MiB);
    expect(vma.pfnmap).toBe(true);
    expect(dev.cpuAccess(vma)).toBe(BAR1);
    dev.configWrite(PCI_COMMAND, 0);
    expect(errnoOf(() => dev.cpuAccess(vma))).toBe('EFAULT');
    dev.configWrite(PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(dev.cpuAccess(vma)).toBe(BAR1);
    expect(errnoOf(() => dev.mmapBar(1, 0x800n))).toBe('EINVAL');
  });

  it('binds endpoints only', () => {
    expect(errnoOf(() => new VfioPciDevice({ topology, bdf: '0000:02:00.0' }))).toBe('EINVAL');
  });
});

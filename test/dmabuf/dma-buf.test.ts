import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError, Metrics, PhyrList } from '../../src/core/index.ts';
import {
  type DmaBufAttachment,
  type DmaBufImporterOps,
  DmaFence,
  dmaBufAttachRevocable,
  PhyrExporter,
} from '../../src/dmabuf/index.ts';
import { laptop, twoSocketServer } from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';
import { FakeDevice } from './fake-device.ts';

const topology = twoSocketServer();
const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC2 = '0000:81:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
const MiB = 1n << 20n;

function ramExporter(dynamic = false): PhyrExporter {
  return new PhyrExporter(
    PhyrList.fromRanges([
      [0x1000_0000n, 0x20_0000n],
      [0x3000_0000n, 0x1000n],
    ]),
    { topology, dynamic, name: 'ram' },
  );
}

function barExporter(): PhyrExporter {
  return new PhyrExporter(PhyrList.fromRanges([[GPU_BAR1, 4n * MiB]]), { topology, name: 'gpu-bar' });
}

/** A dynamic importer that unmaps its mappings on invalidate_mappings, like a well-behaved driver. */
function politeImporter(p2p: boolean, log: string[] = []): DmaBufImporterOps {
  return {
    allowPeer2peer: p2p,
    invalidateMappings(att: DmaBufAttachment) {
      log.push(`move ${att.id}`);
      for (const m of att.mappings) att.dmabuf.unmap(m);
    },
  };
}

describe('dma-buf attach, map, unmap', () => {
  it('maps host memory for a static importer and hands out the exporter ranges in order', () => {
    const exp = ramExporter();
    const dev = new FakeDevice('nic', NIC);
    const att = exp.buf.attach(dev);
    expect(att.dynamic).toBe(false);
    expect(att.peer2peer).toBe(false);
    const m = exp.buf.map(att, 'TO_DEVICE');
    expect(m.p2p).toBeUndefined();
    expect(m.ranges.count).toBe(2);
    expect(m.ranges.addressAt(1)).toBe(0x3000_0000n);
    expect(m.ranges.totalLength).toBe(exp.buf.size);
    exp.buf.unmap(m);
    expect(dev.live.size).toBe(0);
    expectErrno(() => exp.buf.unmap(m), 'EINVAL');
  });

  it('a static importer of a dynamic exporter pins implicitly while mapped', () => {
    const exp = ramExporter(true);
    const att = exp.buf.attach(new FakeDevice('nic', NIC));
    const m = exp.buf.map(att, 'BIDIRECTIONAL');
    expect(exp.pinCount).toBe(1);
    expectErrno(() => exp.move(PhyrList.fromRanges([[0x5000_0000n, exp.buf.size]])), 'EBUSY');
    exp.buf.unmap(m);
    expect(exp.pinCount).toBe(0);
  });

  it('pin is for dynamic importers only; unpin of an unpinned attachment is EINVAL', () => {
    const exp = ramExporter(true);
    const stat = exp.buf.attach(new FakeDevice('a', NIC));
    expectErrno(() => exp.buf.pin(stat), 'EINVAL');
    const dyn = exp.buf.attach(new FakeDevice('b', NIC), politeImporter(false));
    exp.buf.pin(dyn);
    expect(dyn.pinCount).toBe(1);
    expectErrno(() => exp.buf.detach(dyn), 'EBUSY');
    exp.buf.unpin(dyn);
    expectErrno(() => exp.buf.unpin(dyn), 'EINVAL');
    exp.buf.detach(dyn);
    expectErrno(() => exp.buf.map(dyn, 'TO_DEVICE'), 'EINVAL');
  });

  it('since 7.1 a dynamic importer may leave out invalidate_mappings; it is then not revocable', () => {
    // "dma-buf: Make .invalidate_mapping() truly optional" and dma_buf_attach_revocable (dma-buf.c).
    const exp = ramExporter();
    const pinned = exp.buf.attach(new FakeDevice('x', NIC), { allowPeer2peer: true });
    expect(pinned.dynamic).toBe(true);
    expect(dmaBufAttachRevocable(pinned)).toBe(false);
    const polite = exp.buf.attach(new FakeDevice('y', NIC), politeImporter(true));
    expect(dmaBufAttachRevocable(polite)).toBe(true);
    expect(dmaBufAttachRevocable(exp.buf.attach(new FakeDevice('static', NIC)))).toBe(false);
    // invalidate_mappings skips the importer without the op.
    expect(exp.buf.invalidateMappings()).toEqual([polite.describe()]);
  });

  it('detach while mapped is EBUSY; release with attachments is EBUSY', () => {
    const exp = ramExporter();
    const att = exp.buf.attach(new FakeDevice('nic', NIC));
    const m = exp.buf.map(att, 'TO_DEVICE');
    expectErrno(() => exp.buf.detach(att), 'EBUSY');
    exp.buf.unmap(m);
    exp.buf.get();
    exp.buf.put();
    expect(exp.buf.released).toBe(false);
    exp.buf.detach(att);
    exp.buf.put();
    expect(exp.buf.released).toBe(true);
    expectErrno(() => exp.buf.attach(new FakeDevice('late', NIC)), 'EINVAL');
  });
});

describe('peer memory', () => {
  it('BAR memory to an importer without peer2peer is EOPNOTSUPP', () => {
    const exp = barExporter();
    const att = exp.buf.attach(new FakeDevice('nic', NIC));
    expectErrno(() => exp.buf.map(att, 'FROM_DEVICE'), 'EOPNOTSUPP');
  });

  it('BAR memory under the same switch maps with the bus-address type', () => {
    const exp = barExporter();
    const dev = new FakeDevice('nic', NIC);
    const att = exp.buf.attach(dev, politeImporter(true));
    const m = exp.buf.map(att, 'FROM_DEVICE');
    expect(m.p2p).toBe('bus-address');
    expect(m.path).toBe('mmio');
  });

  it('BAR memory to a NIC on another allowlisted host bridge goes through the host bridge', () => {
    const exp = barExporter();
    const att = exp.buf.attach(new FakeDevice('nic2', NIC2), politeImporter(true));
    expect(exp.buf.map(att, 'FROM_DEVICE').p2p).toBe('through-host-bridge');
  });

  it('a pair p2pdma refuses is EINVAL (dma_buf_phys_vec_to_sgt) and nothing stays mapped', () => {
    // The laptop's host bridge is not on the allowlist: its NVMe cannot reach the iGPU BAR.
    const laptopLike = new PhyrExporter(PhyrList.fromRanges([[0x200_0000_0000n, 4n * MiB]]), {
      topology: laptop(),
    });
    const dev = new FakeDevice('nvme', '0000:01:00.0');
    const att = laptopLike.buf.attach(dev, politeImporter(true));
    expectErrno(() => laptopLike.buf.map(att, 'FROM_DEVICE'), 'EINVAL');
    expect(dev.live.size).toBe(0);
    expect(att.mappings.length).toBe(0);
  });

  it('a range straddling a BAR edge is EINVAL', () => {
    const exp = new PhyrExporter(PhyrList.fromRanges([[GPU_BAR1 - 0x1000n, 0x2000n]]), { topology });
    const att = exp.buf.attach(new FakeDevice('nic', NIC), politeImporter(true));
    expectErrno(() => exp.buf.map(att, 'TO_DEVICE'), 'EINVAL');
  });
});

describe('invalidate_mappings, fences and revoke', () => {
  it('invalidate_mappings reaches every dynamic importer (not static ones) and a move changes the ranges', () => {
    const exp = ramExporter(true);
    const log: string[] = [];
    const dev = new FakeDevice('gpu', GPU);
    const a = exp.buf.attach(dev, politeImporter(false, log));
    const b = exp.buf.attach(new FakeDevice('nic', NIC), politeImporter(false, log));
    exp.buf.attach(new FakeDevice('static', NIC));
    exp.buf.map(a, 'TO_DEVICE');
    const notified = exp.move(PhyrList.fromRanges([[0x7000_0000n, exp.buf.size]]));
    expect(notified.length).toBe(2);
    expect(log).toEqual([`move ${a.id}`, `move ${b.id}`]);
    expect(dev.live.size).toBe(0);
    const again = exp.buf.map(a, 'TO_DEVICE');
    expect(again.ranges.addressAt(0)).toBe(0x7000_0000n);
    expect(again.ranges.count).toBe(1);
  });

  it('revoke notifies, waits for the fences in flight, leaves what an importer did not unmap (WARN), refuses later maps', () => {
    const metrics = new Metrics();
    const exp = new PhyrExporter(PhyrList.fromRanges([[GPU_BAR1, 4n * MiB]]), { topology, metrics });
    const buf = exp.buf;
    const done: string[] = [];
    const polite = buf.attach(new FakeDevice('nic', NIC), {
      allowPeer2peer: true,
      invalidateMappings(att) {
        // The NIC cannot stop its WRITE at once: it fences it, then drops its mapping.
        buf.resv.addFence(new DmaFence('nic write', { onSignal: () => done.push('nic write') }), 'write');
        for (const m of att.mappings) buf.unmap(m);
      },
    });
    const lazyDev = new FakeDevice('lazy', NIC2);
    const lazy = buf.attach(lazyDev, { allowPeer2peer: true, invalidateMappings() {} });
    buf.map(polite, 'FROM_DEVICE');
    buf.map(lazy, 'FROM_DEVICE');
    const earlier = new DmaFence('old read');
    buf.resv.addFence(earlier, 'read');
    earlier.signal();
    const report = buf.revoke();
    expect(report.changed).toBe(true);
    expect(report.notified.length).toBe(2);
    expect(report.waited.waitedFor).toEqual([expect.stringContaining('nic write')]);
    expect(report.waited.alreadySignaled).toBe(1);
    expect(done).toEqual(['nic write']);
    // vfio_pci_dma_buf_move (7.1) waits a second for the unmap, WARNs, and goes on: nothing is
    // unmapped for the importer, so its device still reaches the memory.
    expect(report.unmapTimedOut).toEqual([`${lazy.describe()} (mmio)`]);
    expect(lazyDev.live.size).toBe(1);
    expect(lazy.mappings).toHaveLength(1);
    expect(metrics.get('dmabuf.revoke_unmap_timeouts')).toBe(1);
    expect(buf.resv.testSignaled()).toBe(true);
    expectErrno(() => buf.map(polite, 'FROM_DEVICE'), 'ENODEV');
    expectErrno(() => buf.attach(new FakeDevice('new', NIC), politeImporter(true)), 'ENODEV');
    expect(buf.revoke().changed).toBe(false);
    expect(metrics.get('dmabuf.revokes')).toBe(1);
    // Un-revoke: importers are told again and may map.
    expect(buf.unrevoke().length).toBe(2);
    expect(buf.map(polite, 'FROM_DEVICE').p2p).toBe('bus-address');
  });

  it('signalling a fence twice is EINVAL; a newer fence of a context replaces the older', () => {
    const f = new DmaFence('x', { context: 77, seqno: 1 });
    f.signal();
    expectErrno(() => f.signal(), 'EINVAL');
    const exp = ramExporter();
    exp.buf.resv.addFence(new DmaFence('a', { context: 5, seqno: 1 }), 'write');
    exp.buf.resv.addFence(new DmaFence('b', { context: 5, seqno: 2 }), 'write');
    expect(exp.buf.resv.count).toBe(1);
    exp.buf.resv.addFence(new DmaFence('k', { context: 6 }), 'kernel');
    exp.buf.resv.addFence(new DmaFence('bk', { context: 8 }), 'bookkeep');
    expect(exp.buf.resv.fences('kernel').map((x) => x.label)).toEqual(['k']);
    expect(exp.buf.resv.fences('read').map((x) => x.label)).toEqual(['b', 'k']);
    expect(exp.buf.resv.wait('write').waitedFor.length).toBe(2);
    expect(exp.buf.resv.testSignaled('bookkeep')).toBe(false);
  });
});

describe('properties', () => {
  // Against a reference: random attach/map/unmap/pin/revoke sequences keep the live-mapping count of
  // every device equal to the mappings the attachments report; after a revoke the importers with
  // invalidate_mappings hold none, and exactly the static importer's mappings are reported as left
  // behind (7.1 waits for them and WARNs; it unmaps nothing itself).
  test.prop([
    fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 })), { maxLength: 60 }),
  ])("device mappings always equal attachment mappings; revoke leaves only the static importer's", (ops) => {
    const exp = ramExporter(true);
    const devices = [0, 1, 2].map((i) => new FakeDevice(`d${i}`, NIC));
    const atts = devices.map((d, i) => exp.buf.attach(d, i === 2 ? undefined : politeImporter(false)));
    for (const [op, who] of ops) {
      const att = atts[who]!;
      try {
        if (op === 0) exp.buf.map(att, 'TO_DEVICE');
        else if (op === 1 && att.mappings.length > 0) exp.buf.unmap(att.mappings[0]!);
        else if (op === 2) exp.buf.pin(att);
        else if (op === 3 && att.pinCount > 0) exp.buf.unpin(att);
        else if (op === 4) {
          const staticLeft = atts[2]!.mappings.length;
          const report = exp.buf.revoke();
          if (report.changed) expect(report.unmapTimedOut).toHaveLength(staticLeft);
        } else if (op === 5) exp.buf.unrevoke();
      } catch (e) {
        if (!isPhysrError(e)) throw e;
      }
      for (let i = 0; i < 3; i++) expect(devices[i]!.live.size).toBe(atts[i]!.mappings.length);
      if (exp.buf.revoked) for (const d of devices.slice(0, 2)) expect(d.live.size).toBe(0);
      const implicit = atts[2]!.mappings.length;
      expect(exp.pinCount).toBe(atts[0]!.pinCount + atts[1]!.pinCount + implicit);
    }
  });
});

/**
 * The "must hold" for devices: a NIC writes into user memory mapped by physr and into a GPU
 * BAR (switch and host-bridge paths), the CPU reads back exactly those bytes; after unmap the same
 * access faults (strict) or is a counted stale hit until the flush queue is flushed (lazy).
 */
import { describe, expect, it } from 'vitest';
import { COUNTER, PhyrList } from '../../src/core/index.ts';
import {
  commandPointer,
  DmaAccessError,
  descriptorPool,
  Gpu,
  machineFabric,
  Nic,
  NvmeController,
  packetPattern,
  setupDataPointer,
} from '../../src/devices/index.ts';
import { builtinMachine, type Machine } from '../../src/dma/index.ts';
import { MemorySystem, MmStruct, pinUserPages } from '../../src/mm/index.ts';

/** Booted so the PCIe switch routes GPU<->NIC peer traffic (Linux sets ACS redirect with an IOMMU). */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC2 = '0000:81:00.0';
const NVME = '0000:06:00.0';

function userBuffer(machine: Machine, length: bigint) {
  const system = new MemorySystem(machine.platform.folios, { bytes: machine.platform.bytes, anonOrders: [] });
  const mm = new MmStruct(system);
  const va = mm.mmap({ length, kind: 'anon' });
  const pinned = pinUserPages(mm, va, length, { write: true });
  return { mm, va, phyrs: pinned.phyrs };
}

describe('NIC receive into user memory mapped by physr', () => {
  it('strict: the bytes arrive exactly; after unmap the same access faults and memory is untouched', () => {
    const machine = builtinMachine('two-socket-server', { strict: true });
    const fabric = machineFabric(machine);
    const { mm, va, phyrs } = userBuffer(machine, 0x10000n);
    const dev = machine.device(NIC);
    const mapping = dev.map(phyrs, 'FROM_DEVICE');
    const nic = new Nic(fabric, NIC);
    nic.postReceive(mapping.dma);
    const packet = packetPattern(1, 0x10000);
    const { records } = nic.receive(packet);
    expect(records.every((r) => r.segments.every((s) => s.path === 'iommu' && s.target.kind === 'ram'))).toBe(
      true,
    );
    dev.syncForCpu(mapping);
    expect(mm.readUser(va, 0x10000)).toEqual(packet);
    expect(machine.metrics.get(COUNTER.dmaBytesWritten)).toBe(0x10000);

    dev.unmap(mapping);
    nic.postReceive(mapping.dma);
    let error: unknown;
    try {
      nic.receive(packetPattern(2, 0x10000));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DmaAccessError);
    expect((error as DmaAccessError).errno).toBe('EFAULT');
    expect(mm.readUser(va, 0x10000)).toEqual(packet);
    // The first write into the unmapped IOVA faults and the NIC aborts the receive: one fault.
    expect(machine.iommuOf(NIC)!.faults.length).toBe(1);
  });

  it('lazy: after unmap the write is a counted stale hit into the old pages; after the flush it faults', () => {
    const machine = builtinMachine('two-socket-server', { strict: false });
    const fabric = machineFabric(machine);
    const { mm, va, phyrs } = userBuffer(machine, 0x8000n);
    const dev = machine.device(NIC);
    const mapping = dev.map(phyrs, 'FROM_DEVICE');
    const nic = new Nic(fabric, NIC);
    nic.postReceive(mapping.dma);
    nic.receive(packetPattern(1, 0x8000));
    dev.unmap(mapping);

    const staleBefore = machine.metrics.get(COUNTER.iotlbStaleHits);
    nic.postReceive(mapping.dma);
    const late = packetPattern(2, 0x8000);
    const { records } = nic.receive(late);
    const stale = records.flatMap((r) => r.segments).reduce((n, s) => n + s.staleHits, 0);
    // 0x8000 bytes are 8 pages, each translated once through the stale IOTLB entry.
    expect(stale).toBe(8);
    expect(machine.metrics.get(COUNTER.iotlbStaleHits) - staleBefore).toBe(stale);
    expect(mm.readUser(va, 0x8000)).toEqual(late); // the use-after-unmap hazard lazy mode accepts

    machine.flushQueues();
    nic.postReceive(mapping.dma);
    expect(() => nic.receive(packetPattern(3, 0x8000))).toThrow(/EFAULT|faulted/);
    expect(mm.readUser(va, 0x8000)).toEqual(late);
  });
});

describe('swiotlb bouncing', () => {
  it('a forced-bounce device writes into the swiotlb slots; the CPU sees the packet only after sync', () => {
    const machine = builtinMachine('two-socket-server', { iommu: false });
    const fabric = machineFabric(machine);
    const { mm, va, phyrs } = userBuffer(machine, 0x3000n);
    const dev = machine.device(NIC, { forceBounce: true });
    const mapping = dev.map(phyrs, 'FROM_DEVICE');
    const nic = new Nic(fabric, NIC);
    nic.postReceive(mapping.dma);
    const packet = packetPattern(5, 0x3000);
    const { records } = nic.receive(packet);
    const targets = records.flatMap((r) => r.segments.map((s) => s.target));
    expect(targets.every((t) => t.kind === 'ram' && t.region === 'swiotlb')).toBe(true);
    expect(mm.readUser(va, 0x3000)).not.toEqual(packet);
    dev.syncForCpu(mapping);
    expect(mm.readUser(va, 0x3000)).toEqual(packet);
    dev.unmap(mapping);
  });
});

describe('NIC receive into a GPU BAR', () => {
  function gpuTarget(machine: Machine, offset: bigint, length: bigint) {
    const gpu = new Gpu(machineFabric(machine), GPU);
    const list = PhyrList.fromRanges([[gpu.vramCpuAddress(offset), length]]);
    return { gpu, list };
  }

  it('switch path: mapped as a bus address, routed by the switch, no IOMMU involved', () => {
    const machine = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const { gpu, list } = gpuTarget(machine, 0x10_0000n, 0x3000n);
    const mapping = machine.device(NIC).map(list, 'FROM_DEVICE');
    expect(mapping.segments.map((s) => s.kind)).toEqual(['bus-address']);
    expect(mapping.dma.addressAt(0)).toBe(gpu.vramBusAddress(0x10_0000n));
    const nic = new Nic(machineFabric(machine), NIC);
    nic.postReceive(mapping.dma);
    const lookups = () => machine.metrics.get(COUNTER.iotlbHits) + machine.metrics.get(COUNTER.iotlbMisses);
    const before = lookups();
    const packet = packetPattern(7, 0x3000);
    const { records } = nic.receive(packet);
    expect(records[0]!.segments.map((s) => [s.path, s.target.kind])).toEqual([['switch', 'peer-bar']]);
    expect(lookups()).toBe(before);
    expect(gpu.readVram(0x10_0000n, 0x3000)).toEqual(packet);
    expect(machine.platform.bytes.read(gpu.vramCpuAddress(0x10_0000n), 0x3000)).toEqual(packet);
  });

  it('host-bridge path: a NIC on the other socket reaches the BAR through the IOMMU and both allowlisted bridges', () => {
    const machine = builtinMachine('two-socket-server');
    const { gpu, list } = gpuTarget(machine, 0x20_0000n, 0x2000n);
    const mapping = machine.device(NIC2).map(list, 'FROM_DEVICE');
    expect(mapping.segments.map((s) => s.kind)).toEqual(['through-host-bridge']);
    const nic2 = new Nic(machineFabric(machine), NIC2);
    nic2.postReceive(mapping.dma);
    const packet = packetPattern(8, 0x2000);
    const seg = nic2.receive(packet).records[0]!.segments[0]!;
    expect(seg.path).toBe('iommu');
    expect(seg.target).toMatchObject({ kind: 'peer-bar', bdf: GPU, via: 'host-bridge' });
    expect(seg.hops.map((h) => h.kind)).toEqual([
      'device',
      'port',
      'root-complex',
      'iommu',
      'port',
      'port',
      'port',
      'peer',
    ]);
    expect(gpu.readVram(0x20_0000n, 0x2000)).toEqual(packet);
  });

  it('ACS redirect on the switch: the same pair maps through the host bridge and the hops go up to the root complex', () => {
    const machine = builtinMachine('two-socket-server');
    const { gpu, list } = gpuTarget(machine, 0n, 0x1000n);
    const mapping = machine.device(NIC).map(list, 'FROM_DEVICE');
    expect(mapping.segments.map((s) => s.kind)).toEqual(['through-host-bridge']);
    const nic = new Nic(machineFabric(machine), NIC);
    nic.postReceive(mapping.dma);
    const packet = packetPattern(9, 0x1000);
    const seg = nic.receive(packet).records[0]!.segments[0]!;
    expect(seg.hops.map((h) => h.name)).toEqual([
      NIC,
      '0000:02:01.0',
      '0000:01:00.0',
      '0000:00:01.0',
      'pci0000:00',
      machine.iommuOf(NIC)!.name,
      '0000:00:01.0',
      '0000:01:00.0',
      '0000:02:00.0',
      GPU,
    ]);
    expect(gpu.readVram(0n, 0x1000)).toEqual(packet);
  });

  it('one packet across a list mixing user memory and GPU memory lands in both', () => {
    const machine = builtinMachine('two-socket-server');
    const { mm, va, phyrs } = userBuffer(machine, 0x2000n);
    const { gpu } = gpuTarget(machine, 0n, 0x1000n);
    const list = PhyrList.fromRanges([
      ...phyrs.toArray().map((r): [bigint, bigint] => [r.address, r.length]),
      [gpu.vramCpuAddress(0x4000n), 0x1000n],
    ]);
    const mapping = machine.device(NIC).map(list, 'FROM_DEVICE');
    const nic = new Nic(machineFabric(machine), NIC);
    nic.postReceive(mapping.dma);
    const packet = packetPattern(10, 0x3000);
    nic.receive(packet);
    expect(mm.readUser(va, 0x2000)).toEqual(packet.subarray(0, 0x2000));
    expect(gpu.readVram(0x4000n, 0x1000)).toEqual(packet.subarray(0x2000));
  });
});

describe('NVMe over physr mappings', () => {
  it('writes user memory to the namespace and reads it back into another buffer, via PRP lists fetched by DMA', () => {
    const machine = builtinMachine('two-socket-server');
    const fabric = machineFabric(machine);
    const nvme = new NvmeController(fabric, NVME);
    const dev = machine.device(NVME);
    const pool = descriptorPool(machine, NVME);
    const src = userBuffer(machine, 0x10000n);
    const data = packetPattern(42, 0x10000);
    src.mm.writeUser(src.va, data);
    const out = dev.map(src.phyrs, 'TO_DEVICE');
    const dp = setupDataPointer(out.dma, pool, machine.platform.bytes);
    expect(dp.kind).toBe('prp');
    const result = nvme.write(100n, 0x10000 / 512, commandPointer(dp));
    expect(result.descriptorBytesRead).toBe(15 * 8);
    expect(nvme.media.read(100n * 512n, 0x10000)).toEqual(data);
    dev.unmap(out);

    const dst = userBuffer(machine, 0x10000n);
    const back = dev.map(dst.phyrs, 'FROM_DEVICE');
    nvme.read(
      100n,
      0x10000 / 512,
      commandPointer(setupDataPointer(back.dma, pool, machine.platform.bytes, { preferSgl: true })),
    );
    dev.syncForCpu(back);
    expect(dst.mm.readUser(dst.va, 0x10000)).toEqual(data);
    dev.unmap(back);
    pool.release();
  });
});

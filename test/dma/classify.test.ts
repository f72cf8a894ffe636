/**
 * What each range of a list is (src/dma/classify.ts over the memory map and drivers/pci/p2pdma.c
 * pci_p2pdma_map_type, Linux 7.1): runs of one class with their byte offsets and lengths, and MMIO
 * that belongs to no PCI function.
 */
import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import { builtinMachine, classifyRanges, classifyRuns } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NIC = '0000:04:00.0';
const GPU = '0000:03:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
/** The switch's redirect cleared, so the GPU's BAR is a bus address for the NIC. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

describe('classifyRuns / classifyRanges', () => {
  const list = PhyrList.fromRanges([
    [5n * GiB, 0x1000n],
    [6n * GiB, 0x800n],
    [GPU_BAR1, 0x2000n],
    [GPU_BAR1 + 0x10_0000n, 0x1000n],
    [7n * GiB, 0x3000n],
  ]);

  it('cuts a list into runs of one class, each with its first byte offset and its length', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const runs = classifyRuns(m.device(NIC), list);
    expect(
      runs.map(({ cls, from, to, sourceOffset, length }) => ({ cls, from, to, sourceOffset, length })),
    ).toEqual([
      { cls: 'host', from: 0, to: 2, sourceOffset: 0n, length: 0x1800n },
      { cls: 'bus-address', from: 2, to: 4, sourceOffset: 0x1800n, length: 0x3000n },
      { cls: 'host', from: 4, to: 5, sourceOffset: 0x4800n, length: 0x3000n },
    ]);
    expect(runs.map((r) => r.p2p?.provider)).toEqual([undefined, GPU, undefined]);
  });

  it('gives every range its class, its byte offset in the list and its P2P decision', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const ranges = classifyRanges(m.device(NIC), list);
    expect(ranges.map((r) => [r.cls, r.address, r.length, r.sourceOffset, r.p2p?.mapType])).toEqual([
      ['host', 5n * GiB, 0x1000n, 0n, undefined],
      ['host', 6n * GiB, 0x800n, 0x1000n, undefined],
      ['bus-address', GPU_BAR1, 0x2000n, 0x1800n, 'bus-address'],
      ['bus-address', GPU_BAR1 + 0x10_0000n, 0x1000n, 0x3800n, 'bus-address'],
      ['host', 7n * GiB, 0x3000n, 0x4800n, undefined],
    ]);
  });

  it('MMIO that belongs to no PCI function (a platform device window) is EINVAL naming the range', () => {
    const m = builtinMachine('two-socket-server');
    m.platform.memoryMap.add({
      kind: 'mmio',
      start: 0xc000_0000n,
      last: 0xc000_0fffn,
      name: 'platform device',
    });
    const nic = m.device(NIC);
    const bad = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [0xc000_0000n, 0x100n],
    ]);
    expectErrno(
      () => classifyRuns(nic, bad),
      'EINVAL',
      /range 1 at 0xc0000000 is MMIO of no known PCI function/,
    );
    expectErrno(() => nic.map(bad, 'TO_DEVICE'), 'EINVAL', /no known PCI function/);
  });
});

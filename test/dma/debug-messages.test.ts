/**
 * What dma-debug tells the user (kernel/dma/debug.c, Linux 7.1): the words of its reports, and
 * dma_mapping_error on a handle that is no longer mapped (debug_dma_mapping_error finds no entry and
 * does nothing).
 */
import { describe, expect, it } from 'vitest';
import { PhyrList, phyrListToSgTable } from '../../src/core/index.ts';
import { builtinMachine, dmaMappingError, mapPhys, unmapPhys } from '../../src/dma/index.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';

describe('dma-debug reports', () => {
  it('unmap of a never-mapped address names the address and the size', () => {
    const m = builtinMachine('two-socket-server');
    unmapPhys(m.device(NVME), 0x1234_0000n, 0x1000n, 'TO_DEVICE');
    expect(m.debug.findings.map((f) => f.message)).toEqual([
      `DMA-API: ${NVME}: device driver tries to free DMA memory it has not allocated [device address=0x12340000] [size=4096 bytes]`,
    ]);
  });

  it('a segment across the boundary names its start, end and the boundary mask', () => {
    const m = builtinMachine('two-socket-server');
    m.debug.checkSgSegment(NVME, 0xffff_f000n, 0x2000n, 0x1_0000n, 0xffff_ffffn);
    // Ending exactly at the boundary is fine.
    m.debug.checkSgSegment(NVME, 0xffff_e000n, 0x2000n, 0x1_0000n, 0xffff_ffffn);
    expect(m.debug.findings.map((f) => [f.class, f.message])).toEqual([
      [
        'sg-segment-crosses-boundary',
        `DMA-API: ${NVME}: mapping sg segment across boundary [start=0xfffff000] [end=0x100000fff] [boundary=0xffffffff]`,
      ],
    ]);
  });

  it('dma_mapping_error after unmap finds no entry and reports nothing', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const map = mapPhys(dev, 5n * GiB, 0x1000n, 'TO_DEVICE');
    expect(dmaMappingError(map)).toBe(false);
    unmapPhys(dev, map.dma.addressAt(0), 0x1000n, 'TO_DEVICE');
    expect(dmaMappingError(map)).toBe(false);
    expect(m.debug.findings).toEqual([]);
  });

  it('map_sg entries take part in cacheline tracking; DMA_ATTR_SKIP_CPU_SYNC silences the overlap', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    const sgtOf = (at: bigint) => phyrListToSgTable(PhyrList.fromRanges([[at, 0x10n]]));
    const a = sgtOf(5n * GiB + 0x10n);
    const b = sgtOf(5n * GiB + 0x20n);
    const c = sgtOf(5n * GiB + 0x30n);
    dev.mapSg(a, 'FROM_DEVICE');
    dev.mapSg(b, 'FROM_DEVICE', { skipCpuSync: true });
    expect(m.debug.findings).toEqual([]);
    dev.mapSg(c, 'FROM_DEVICE');
    expect(m.debug.findings.map((f) => [f.class, f.dmaAddress])).toEqual([
      ['overlapping-cacheline', 5n * GiB + 0x30n],
    ]);
    for (const sgt of [a, b, c]) dev.unmapSg(sgt, 'FROM_DEVICE');
  });
});

import { createReadStream, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readTraceStream } from '../../src/trace/read-trace.ts';
import { type ReplayOptions, type ReplayResult, TraceReplay } from '../../src/trace/replay.ts';

const GPU = '../shared/data/captures/gpu-vm-6.18/dma-trace.txt';
const SNIPPET = '../shared/data/captures/trace-snippets/iommu-use-after-unmap-6.12.txt';

async function replayFile(path: string, options: ReplayOptions = {}): Promise<ReplayResult> {
  const r = new TraceReplay(options);
  await readTraceStream(createReadStream(path), path, (e) => r.onEvent(e));
  return r.finish();
}

async function replayLines(lines: readonly string[], options: ReplayOptions = {}): Promise<ReplayResult> {
  const r = new TraceReplay(options);
  await readTraceStream(Readable.from([`${lines.join('\n')}\n`]), 'hand.txt', (e) => r.onEvent(e));
  return r.finish();
}

/** A tracefs line at second `t` (as print_trace_fmt makes it). */
function at(t: number, event: string, body: string): string {
  return `  fio-100  [002] .....  ${t.toFixed(6)}: ${event}: ${body}`;
}
const DEV = '0000:01:00.0';
const mapPhys = (t: number, dma: string, size: number, dir = 'TO_DEVICE') =>
  at(t, 'dma_map_phys', `${DEV} dir=${dir} dma_addr=${dma} size=${size} phys_addr=${dma} attrs=`);
const unmapPhys = (t: number, dma: string, size: number, dir = 'TO_DEVICE') =>
  at(t, 'dma_unmap_phys', `${DEV} dir=${dir} dma_addr=${dma} size=${size} attrs=`);

function classes(r: ReplayResult): string[] {
  return r.findings.map((f) => f.class);
}

describe('the real 6.18 GPU trace', () => {
  it('ends with no live mapping and no misuse', async () => {
    const r = await replayFile(GPU);
    expect(r.findings).toEqual([]);
    expect([...r.liveAtEnd]).toEqual([['0000:00:06.0', 0]]);
    const c = r.devices.get('0000:00:06.0')!;
    // Counted independently from the file's text.
    const text = readFileSync(GPU, 'utf8');
    const count = (name: string) => text.split('\n').filter((l) => l.includes(` ${name}: `)).length;
    expect(c.maps).toBe(count('dma_map_phys'));
    expect(c.unmaps).toBe(count('dma_unmap_phys'));
    expect(c.sgMaps).toBe(count('dma_map_sg'));
    expect(c.sgUnmaps).toBe(count('dma_unmap_sg'));
  });
});

describe('the real 6.12 AMD-Vi lines', () => {
  it('give one use-after-unmap on 0000:c2:00.0 at 0xfe980000, 6.2 ms after its unmap', async () => {
    const r = await replayFile(SNIPPET);
    expect(r.findings).toHaveLength(1);
    const f = r.findings[0]!;
    expect(f).toMatchObject({ class: 'use-after-unmap', device: '0000:c2:00.0', address: 0xfe98_0000n });
    expect(f.unmappedAt).toBe('327.747766');
    expect(Math.round(f.sinceUnmapUs! / 100) / 10).toBe(6.2);
    // It quotes the map, alloc, free, unmap and fault lines (lines 4..8 of the file).
    expect(f.lines.map((l) => l.line)).toEqual([4, 5, 6, 7, 8]);
    expect(f.lines.at(-1)!.text).toContain(
      'io_page_fault: IOMMU:ath12k_pci 0000:c2:00.0 iova=0x00000000fe980000',
    );
  });
});

describe('misuse classes on hand-written traces', () => {
  it('unmap of an address never mapped', async () => {
    const r = await replayLines([unmapPhys(1, '5000', 4096)]);
    expect(classes(r)).toEqual(['unmap-never-mapped']);
    expect(r.findings[0]!.lines.map((l) => l.line)).toEqual([1]);
  });
  it('double unmap quotes the map, the first unmap and the second', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096),
      unmapPhys(2, '5000', 4096),
      unmapPhys(3, '5000', 4096),
    ]);
    expect(classes(r)).toEqual(['double-unmap']);
    expect(r.findings[0]!.lines.map((l) => l.line)).toEqual([1, 2, 3]);
  });
  it('size mismatch', async () => {
    const r = await replayLines([mapPhys(1, '5000', 8192), unmapPhys(2, '5000', 4096)]);
    expect(classes(r)).toEqual(['size-mismatch']);
    expect(r.findings[0]!.message).toBe(`${DEV}: 0x5000 mapped with size 8192, unmapped with size 4096`);
  });
  it('direction mismatch', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096, 'TO_DEVICE'),
      unmapPhys(2, '5000', 4096, 'FROM_DEVICE'),
    ]);
    expect(classes(r)).toEqual(['dir-mismatch']);
  });
  it('leak, with where it was made', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096),
      mapPhys(2, '9000', 4096),
      unmapPhys(3, '9000', 4096),
    ]);
    expect(classes(r)).toEqual(['leak']);
    expect(r.findings[0]!.lines[0]!.line).toBe(1);
    expect(r.liveAtEnd.get(DEV)).toBe(1);
  });
  it('overlapping live mappings', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 8192),
      mapPhys(2, '6000', 4096),
      unmapPhys(3, '6000', 4096),
      unmapPhys(4, '5000', 8192),
    ]);
    expect(classes(r)).toEqual(['overlap']);
    expect(r.findings[0]!.lines.map((l) => l.line)).toEqual([1, 2]);
  });
  it('adjacent mappings do not overlap', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096),
      mapPhys(2, '6000', 4096),
      unmapPhys(3, '6000', 4096),
      unmapPhys(4, '5000', 4096),
    ]);
    expect(r.findings).toEqual([]);
  });
  it('an sg list unmapped by its phys addresses; a second unmap is a double unmap', async () => {
    const map = at(
      1,
      'dma_map_sg',
      `${DEV} dir=FROM_DEVICE nents=2/2 ents=1/1 dma_addrs={0xfff00000} sizes={0x2000} phys_addrs={0x81000,0x93000} attrs=`,
    );
    const unmap = (t: number) =>
      at(t, 'dma_unmap_sg', `${DEV} dir=FROM_DEVICE phys_addrs={0x81000,0x93000} attrs=`);
    expect(classes(await replayLines([map, unmap(2)]))).toEqual([]);
    expect(classes(await replayLines([map, unmap(2), unmap(3)]))).toEqual(['double-unmap']);
  });
  it('free of a dma_map_phys mapping is the wrong function', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096),
      at(2, 'dma_free', `${DEV} dma_addr=5000 size=4096 virt_addr=00000000deadbeef attrs=`),
    ]);
    expect(classes(r)).toEqual(['wrong-function']);
  });
  it('sync after unmap', async () => {
    const r = await replayLines([
      mapPhys(1, '5000', 4096),
      unmapPhys(2, '5000', 4096),
      at(3, 'dma_sync_single_for_cpu', `${DEV} dir=TO_DEVICE dma_addr=5000 size=4096`),
    ]);
    expect(classes(r)).toEqual(['sync-not-mapped']);
  });
  const iommuMap = (t: number) =>
    at(t, 'map', 'IOMMU: iova=0x00000000ffff0000 - 0x00000000ffff1000 paddr=0x0000000000081000 size=4096');
  const iommuUnmap = (t: number) =>
    at(t, 'unmap', 'IOMMU: iova=0x00000000ffff0000 - 0x00000000ffff1000 size=4096 unmapped_size=4096');
  const fault = (t: number) =>
    at(t, 'io_page_fault', `IOMMU:nvme ${DEV} iova=0x00000000ffff0800 flags=0x0020`);
  it('use after unmap gives the unmap timestamp and the delay', async () => {
    const r = await replayLines([iommuMap(1), iommuUnmap(2.5), fault(2.5015)]);
    expect(classes(r)).toEqual(['use-after-unmap']);
    expect(r.findings[0]).toMatchObject({ unmappedAt: '2.500000', sinceUnmapUs: 1500 });
  });
  it('a fault on an IOVA the trace never mapped', async () => {
    const r = await replayLines([fault(1)], { kernel: '6.12.35' });
    expect(classes(r)).toEqual(['fault-never-mapped']);
  });
  it('an iommu:unmap without its map is "unknown" on 7.0 and early 7.1, an error on 6.12', async () => {
    const on70 = await replayLines([iommuUnmap(1)], { kernel: '7.0.3' });
    expect(on70.findings.map((f) => [f.class, f.severity])).toEqual([['iommu-map-missing', 'unknown']]);
    const on612 = await replayLines([iommuUnmap(1)], { kernel: '6.12.35' });
    expect(on612.findings.map((f) => [f.class, f.severity])).toEqual([['iommu-map-missing', 'error']]);
    const unknownKernel = await replayLines([iommuUnmap(1)]);
    expect(unknownKernel.findings[0]!.severity).toBe('unknown');
  });
  it('a translated dma_map_phys without iommu:map while iommu events are on', async () => {
    const r = await replayLines(
      [
        iommuMap(1),
        at(2, 'dma_map_phys', `${DEV} dir=TO_DEVICE dma_addr=fffe0000 size=4096 phys_addr=93000 attrs=`),
        at(3, 'dma_unmap_phys', `${DEV} dir=TO_DEVICE dma_addr=fffe0000 size=4096 attrs=`),
      ],
      { kernel: '7.1.0' },
    );
    expect(r.findings.map((f) => [f.class, f.severity])).toEqual([['iommu-map-missing', 'unknown']]);
  });
});

import { describe, expect, it } from 'vitest';
import { formatError, isPhysrError } from '../../src/core/index.ts';
import type { TraceEvent } from '../../src/trace/events.ts';
import { parseTraceLine } from '../../src/trace/trace-line.ts';

/** A tracefs line as print_trace_fmt writes it: comm-pid, [cpu], flags, timestamp, event. */
function line(event: string, body: string): string {
  return `          python3-579     [015] .....    30.457882: ${event}: ${body}`;
}

function parse(text: string): TraceEvent {
  const r = parseTraceLine(text, 't.txt', 7);
  if (r.type !== 'event') throw new Error(`not an event: ${r.type}`);
  return r.event;
}

function parseError(text: string): string {
  try {
    parseTraceLine(text, 't.txt', 7);
  } catch (error) {
    if (isPhysrError(error)) return formatError(error);
    throw error;
  }
  throw new Error('parsed');
}

describe('dma map/unmap of one range (class dma_map / dma_unmap)', () => {
  // "%s dir=%s dma_addr=%llx size=%zu phys_addr=%llx attrs=%s"
  for (const name of ['dma_map_phys', 'dma_map_page', 'dma_map_resource']) {
    it(`${name}`, () => {
      const e = parse(
        line(
          name,
          '0000:00:06.0 dir=TO_DEVICE dma_addr=ffffffffffff0000 size=4096 phys_addr=105b12000 attrs=SKIP_CPU_SYNC|MMIO',
        ),
      );
      expect(e).toMatchObject({
        kind: 'map',
        event: name,
        device: '0000:00:06.0',
        dir: 'TO_DEVICE',
        dma: 0xffff_ffff_ffff_0000n,
        size: 4096n,
        phys: 0x1_05b1_2000n,
        attrs: ['SKIP_CPU_SYNC', 'MMIO'],
      });
      expect(e.at).toMatchObject({ line: 7, time: '30.457882', timeUs: 30_457_882 });
    });
  }
  // "%s dir=%s dma_addr=%llx size=%zu attrs=%s"
  for (const name of ['dma_unmap_phys', 'dma_unmap_page', 'dma_unmap_resource']) {
    it(`${name}`, () => {
      expect(
        parse(line(name, '0000:00:06.0 dir=BIDIRECTIONAL dma_addr=1e0513000 size=8192 attrs=')),
      ).toMatchObject({
        kind: 'unmap',
        dma: 0x1_e051_3000n,
        size: 8192n,
        dir: 'BIDIRECTIONAL',
      });
    });
  }
});

describe('dma_map_sg in both print forms', () => {
  it('current form: nents=a/b ents=c/d and three arrays', () => {
    const e = parse(
      line(
        'dma_map_sg',
        '0000:00:06.0 dir=BIDIRECTIONAL nents=2/2 ents=1/1 dma_addrs={0xfff00000} sizes={0x3000} phys_addrs={0x16e600000,0x1d8c00000} attrs=',
      ),
    );
    expect(e).toMatchObject({
      kind: 'map_sg',
      counted: true,
      nents: 2,
      ents: 1,
      truncated: false,
      dmaAddrs: [0xfff0_0000n],
      sizes: [0x3000n],
      physAddrs: [0x1_6e60_0000n, 0x1_d8c0_0000n],
    });
  });
  it('current form cut at 128 entries: [TRUNCATED] and the full counts', () => {
    const hex = (n: number, base: bigint) =>
      `{${Array.from({ length: n }, (_, i) => `0x${(base + BigInt(i) * 0x1000n).toString(16)}`).join(',')}}`;
    const sizes = `{${Array.from({ length: 128 }, () => '0x1000').join(',')}}`;
    const e = parse(
      line(
        'dma_map_sg',
        `0000:00:06.0 dir=FROM_DEVICE nents=128/300 ents=128/300 [TRUNCATED] dma_addrs=${hex(128, 0x1000_0000n)} sizes=${sizes} phys_addrs=${hex(128, 0x1000_0000n)} attrs=`,
      ),
    );
    expect(e).toMatchObject({ kind: 'map_sg', truncated: true, nents: 300, ents: 300 });
    if (e.kind === 'map_sg') expect(e.physAddrs).toHaveLength(128);
  });
  it('older form without counts', () => {
    expect(
      parse(
        line(
          'dma_map_sg',
          '0000:00:06.0 dir=TO_DEVICE dma_addrs={0x1000,0x3000} sizes={0x1000,0x2000} phys_addrs={0x81000,0x93000} attrs=',
        ),
      ),
    ).toMatchObject({ kind: 'map_sg', counted: false, nents: 2, ents: 2, truncated: false });
  });
  it('counts that disagree with the arrays are a located error', () => {
    expect(
      parseError(
        line(
          'dma_map_sg',
          '0000:00:06.0 dir=TO_DEVICE nents=3/3 ents=1/1 dma_addrs={0x1} sizes={0x1} phys_addrs={0x1} attrs=',
        ),
      ),
    ).toBe('t.txt:7: dma_map_sg: EINVAL: nents=3/3 but phys_addrs has 1 entries');
  });
});

describe('the other dma: events', () => {
  it('dma_map_sg_err: "%s dir=%s dma_addrs=%s err=%d attrs=%s"', () => {
    expect(
      parse(line('dma_map_sg_err', '0000:00:06.0 dir=TO_DEVICE dma_addrs={0x81000,0x93000} err=-12 attrs=')),
    ).toMatchObject({ kind: 'map_sg_err', err: -12, physAddrs: [0x81000n, 0x93000n] });
  });
  it('dma_unmap_sg: "%s dir=%s phys_addrs=%s attrs=%s"', () => {
    expect(
      parse(line('dma_unmap_sg', '0000:00:06.0 dir=TO_DEVICE phys_addrs={0x81000} attrs=')),
    ).toMatchObject({
      kind: 'unmap_sg',
      physAddrs: [0x81000n],
    });
  });
  for (const name of ['dma_alloc', 'dma_alloc_pages', 'dma_alloc_sgt_err']) {
    it(`${name} with and without dir=`, () => {
      const withDir = parse(
        line(
          name,
          '0000:c2:00.0 dir=BIDIRECTIONAL dma_addr=fe980000 size=524288 virt_addr=000000006cadbcb1 flags=GFP_KERNEL|__GFP_ZERO attrs=',
        ),
      );
      expect(withDir).toMatchObject({
        kind: 'alloc',
        dir: 'BIDIRECTIONAL',
        dma: 0xfe98_0000n,
        size: 524288n,
      });
      expect(withDir.kind === 'alloc' && withDir.failed).toBe(name === 'dma_alloc_sgt_err');
      expect(
        parse(
          line(
            name,
            '0000:c2:00.0 dma_addr=fe980000 size=524288 virt_addr=000000006cadbcb1 flags=GFP_KERNEL attrs=',
          ),
        ),
      ).toMatchObject({ kind: 'alloc', dir: undefined });
    });
  }
  it('dma_alloc_sgt: "%s dir=%s dma_addr=%llx size=%zu phys_addrs=%s flags=%s attrs=%s"', () => {
    expect(
      parse(
        line(
          'dma_alloc_sgt',
          '0000:c2:00.0 dir=TO_DEVICE dma_addr=ff000000 size=8192 phys_addrs={0x81000,0x93000} flags=GFP_KERNEL attrs=',
        ),
      ),
    ).toMatchObject({ kind: 'alloc', physAddrs: [0x81000n, 0x93000n], size: 8192n });
  });
  for (const name of ['dma_free', 'dma_free_pages']) {
    it(`${name} with and without dir=`, () => {
      expect(
        parse(
          line(
            name,
            '0000:c2:00.0 dir=BIDIRECTIONAL dma_addr=fe980000 size=524288 virt_addr=000000006cadbcb1 attrs=',
          ),
        ),
      ).toMatchObject({ kind: 'free', dir: 'BIDIRECTIONAL', size: 524288n });
      expect(
        parse(line(name, '0000:c2:00.0 dma_addr=fe980000 size=524288 virt_addr=000000006cadbcb1 attrs=')),
      ).toMatchObject({
        kind: 'free',
        dir: undefined,
      });
    });
  }
  it('dma_free_sgt: "%s dir=%s dma_addr=%llx size=%zu phys_addrs=%s"', () => {
    expect(
      parse(
        line('dma_free_sgt', '0000:c2:00.0 dir=TO_DEVICE dma_addr=ff000000 size=8192 phys_addrs={0x81000}'),
      ),
    ).toMatchObject({
      kind: 'free',
      dma: 0xff00_0000n,
    });
  });
  for (const [name, toCpu] of [
    ['dma_sync_single_for_cpu', true],
    ['dma_sync_single_for_device', false],
  ] as const) {
    it(`${name}: "%s dir=%s dma_addr=%llx size=%zu"`, () => {
      expect(parse(line(name, '0000:00:06.0 dir=FROM_DEVICE dma_addr=1dabb0000 size=61440'))).toMatchObject({
        kind: 'sync_single',
        toCpu,
        size: 61440n,
      });
    });
  }
  for (const [name, toCpu] of [
    ['dma_sync_sg_for_cpu', true],
    ['dma_sync_sg_for_device', false],
  ] as const) {
    it(`${name}: "%s dir=%s dma_addrs=%s sizes=%s"`, () => {
      expect(
        parse(line(name, '0000:00:06.0 dir=FROM_DEVICE dma_addrs={0x1000,0x5000} sizes={0x1000,0x800}')),
      ).toMatchObject({
        kind: 'sync_sg',
        toCpu,
        dmaAddrs: [0x1000n, 0x5000n],
        sizes: [0x1000n, 0x800n],
      });
    });
  }
  it('swiotlb_bounced: "dev_name: %s dma_mask=%llx dev_addr=%llx size=%zu %s"', () => {
    expect(
      parse(
        line(
          'swiotlb_bounced',
          'dev_name: 0000:00:04.0 dma_mask=ffffffff dev_addr=1d9eaf000 size=4096 NORMAL',
        ),
      ),
    ).toMatchObject({ kind: 'swiotlb_bounced', device: '0000:00:04.0', dmaMask: 0xffff_ffffn, force: false });
  });
});

describe('iommu: events', () => {
  it('map: "IOMMU: iova=0x%016llx - 0x%016llx paddr=0x%016llx size=%zu"', () => {
    expect(
      parse(
        line(
          'map',
          'IOMMU: iova=0x00000000fe980000 - 0x00000000fea00000 paddr=0x000000010ec80000 size=524288',
        ),
      ),
    ).toMatchObject({ kind: 'iommu_map', iova: 0xfe98_0000n, size: 524288n, paddr: 0x1_0ec8_0000n });
  });
  it('map whose range end is not iova + size is malformed', () => {
    expect(
      parseError(
        line(
          'map',
          'IOMMU: iova=0x00000000fe980000 - 0x00000000fea10000 paddr=0x000000010ec80000 size=524288',
        ),
      ),
    ).toBe('t.txt:7: map: EINVAL: iova range end 0xfea10000 is not iova + size');
  });
  it('unmap: "IOMMU: iova=0x%016llx - 0x%016llx size=%zu unmapped_size=%zu"', () => {
    expect(
      parse(
        line('unmap', 'IOMMU: iova=0x00000000fe980000 - 0x00000000fea00000 size=524288 unmapped_size=524288'),
      ),
    ).toMatchObject({ kind: 'iommu_unmap', iova: 0xfe98_0000n, unmappedSize: 524288n });
  });
  it('io_page_fault: "IOMMU:%s %s iova=0x%016llx flags=0x%04x"', () => {
    expect(
      parse(line('io_page_fault', 'IOMMU:ath12k_pci 0000:c2:00.0 iova=0x00000000fe980000 flags=0x0001')),
    ).toMatchObject({
      kind: 'io_page_fault',
      driver: 'ath12k_pci',
      device: '0000:c2:00.0',
      iova: 0xfe98_0000n,
      flags: 1,
    });
  });
  it('attach_device_to_domain: "IOMMU: device=%s"', () => {
    expect(parse(line('attach_device_to_domain', 'IOMMU: device=0000:c2:00.0'))).toMatchObject({
      kind: 'iommu_device',
      device: '0000:c2:00.0',
      groupId: undefined,
    });
  });
  for (const name of ['add_device_to_group', 'remove_device_from_group']) {
    it(`${name}: "IOMMU: groupID=%d device=%s"`, () => {
      expect(parse(line(name, 'IOMMU: groupID=14 device=0000:c2:00.0'))).toMatchObject({
        groupId: 14,
        device: '0000:c2:00.0',
      });
    });
  }
});

describe('line forms', () => {
  const body = '0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=';
  it('trace-cmd report: no flags column, padded event name', () => {
    expect(parse(`         python3-579   [015]    30.457882: dma_unmap_phys:       ${body}`)).toMatchObject({
      kind: 'unmap',
    });
  });
  it('record-tgid and a comm with dashes and parentheses', () => {
    expect(
      parse(`(udev-worker)-532   (    532) [010] d..1.     4.878076: dma_unmap_phys: ${body}`),
    ).toMatchObject({
      kind: 'unmap',
      at: { timeUs: 4_878_076 },
    });
  });
  it('unknown events are reported as unknown, not as errors', () => {
    expect(parseTraceLine(line('sched_switch', 'prev_comm=a prev_pid=1'), 't', 1)).toEqual({
      type: 'unknown',
      name: 'sched_switch',
    });
  });
  it('comments, trace-cmd headers and lost-event notes are metadata', () => {
    expect(parseTraceLine('# tracer: nop', 't', 1)).toEqual({ type: 'meta', lostEvents: 0 });
    expect(parseTraceLine('cpus=16', 't', 1)).toEqual({ type: 'meta', lostEvents: 0 });
    expect(parseTraceLine('CPU:3 [LOST 42 EVENTS]', 't', 1)).toEqual({ type: 'meta', lostEvents: 42 });
  });
  it('a line that is no event is a located error', () => {
    expect(parseError('garbage here')).toBe(
      't.txt:7: EINVAL: not a trace event line (TASK-PID [CPU] TIMESTAMP: EVENT: ...)',
    );
  });
  it('a missing field names the event and the field', () => {
    expect(
      parseError(line('dma_map_phys', '0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=')),
    ).toBe('t.txt:7: dma_map_phys: EINVAL: no phys_addr= field');
    expect(
      parseError(
        line('dma_map_phys', '0000:00:06.0 dir=SIDEWAYS dma_addr=1000 size=4096 phys_addr=1 attrs='),
      ),
    ).toBe('t.txt:7: dma_map_phys: EINVAL: dir=SIDEWAYS is not a DMA direction');
  });
});

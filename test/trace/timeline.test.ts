import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { analyzeTrace } from '../../src/trace/analyze.ts';
import { traceReportJson, traceViewDocument } from '../../src/trace/render.ts';
import { TIMELINE_KINDS, TimelineRecorder } from '../../src/trace/timeline.ts';
import { propertyRuns } from '../thorough.ts';

const SNIPPET = '../shared/data/captures/trace-snippets/iommu-use-after-unmap-6.12.txt';

const event = fc.record({
  kind: fc.constantFrom(...TIMELINE_KINDS),
  address: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
  size: fc.option(fc.bigInt({ min: 0n, max: 1n << 65n }), { nil: undefined }),
});

describe('TimelineRecorder against the list of all events', () => {
  test.prop([fc.nat({ max: 6 }), fc.nat({ max: 6 }), fc.array(event, { maxLength: 40 })], {
    numRuns: propertyRuns(200),
  })(
    'keeps the first `head` and the last `tail` events and counts the rest by kind',
    (head, tail, events) => {
      const t = new TimelineRecorder(head, tail);
      events.forEach((e, i) => {
        t.add(1000 + i, e.kind, e.address, e.size, i + 1);
      });
      const r = t.result();
      const all = events.map((e, i) => ({
        timeUs: 1000 + i,
        kind: e.kind,
        address: e.address,
        // Sizes above 64 bits are unknown rather than cut.
        size: e.size !== undefined && e.size < 1n << 64n ? e.size : undefined,
        line: i + 1,
      }));
      const kept = all.length <= head + tail ? all : [...all.slice(0, head), ...all.slice(all.length - tail)];
      expect(r.entries).toEqual(kept);
      expect(r.total).toBe(events.length);
      expect(r.omitted).toBe(events.length - kept.length);
      expect(r.gapAfter).toBe(r.omitted > 0 ? head - 1 : undefined);
      const left = new Map<string, number>();
      for (const e of all.slice(head, all.length - tail))
        if (r.omitted > 0) left.set(e.kind, (left.get(e.kind) ?? 0) + 1);
      expect(r.omittedByKind).toEqual(left);
    },
  );
});

describe('the replay timeline', () => {
  it('the 6.12 lines: alloc, free, then the fault on the device; iommu map and unmap on the IOMMU', async () => {
    const a = await analyzeTrace(SNIPPET);
    const dev = a.timelines.get('0000:c2:00.0')!;
    expect(dev.entries).toEqual([
      { timeUs: 4_878_079, kind: 'alloc', address: 0xfe980000n, size: 524288n, line: 5 },
      { timeUs: 327_747_763, kind: 'free', address: 0xfe980000n, size: 524288n, line: 6 },
      { timeUs: 327_753_942, kind: 'fault', address: 0xfe980000n, size: undefined, line: 8 },
    ]);
    expect(dev.omitted).toBe(0);
    expect(a.iommuTimeline.entries.map((e) => [e.kind, e.line])).toEqual([
      ['iommu_map', 4],
      ['iommu_unmap', 7],
    ]);
    const json = traceReportJson(a) as { devices: { timeline: unknown }[] };
    expect(json.devices[0]!.timeline).toEqual({
      total: 3,
      omitted: 0,
      gapAfter: null,
      omittedByKind: {},
      events: [
        { t: 4_878_079, kind: 'alloc', address: '0xfe980000', size: '0x80000', line: 5 },
        { t: 327_747_763, kind: 'free', address: '0xfe980000', size: '0x80000', line: 6 },
        { t: 327_753_942, kind: 'fault', address: '0xfe980000', size: null, line: 8 },
      ],
    });
  });
});

describe('the interactive page document', () => {
  it('merges the device and IOMMU timelines in time order, the finding after the fault it rests on', async () => {
    const a = await analyzeTrace(SNIPPET);
    const doc = traceViewDocument(a, 'physr trace x');
    expect(doc.command).toBe('physr trace x');
    expect(doc.trace!.source).toBe(SNIPPET);
    expect(doc.trace!.events.map((e) => [e.time, e.kind])).toEqual([
      ['4.878076', 'map'],
      ['4.878079', 'map'],
      ['327.747763', 'unmap'],
      ['327.747766', 'unmap'],
      ['327.753942', 'fault'],
      ['327.753942', 'fault'],
    ]);
    expect(doc.trace!.events[1]!.text).toBe('0000:c2:00.0: alloc 0xfe980000+0x80000 (line 5)');
    expect(doc.trace!.events[5]!.text).toMatch(
      /^finding: use-after-unmap: 0000:c2:00\.0: IOMMU fault on 0xfe980000 6\.2 ms after/,
    );
  });
  it('marks where a bounded timeline left events out, with the count by kind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-timeline-'));
    const file = join(dir, 't.txt');
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) {
      const us = String(i + 1).padStart(6, '0');
      lines.push(
        `  a-1 [000] .....  1.${us}: dma_map_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=${i + 1}000 size=4096 phys_addr=${i + 1}000 attrs=`,
      );
    }
    writeFileSync(file, `${lines.join('\n')}\n`);
    const a = await analyzeTrace(file, { timelineEvents: 4 });
    const t = a.timelines.get('0000:00:06.0')!;
    expect(t.entries.map((e) => e.line)).toEqual([1, 2, 5, 6]);
    expect(t.omittedByKind).toEqual(new Map([['map', 2]]));
    // (Each map is a leak too: those findings sit at their map lines.)
    const texts = traceViewDocument(a)
      .trace!.events.map((e) => e.text)
      .filter((t) => !t.startsWith('finding: leak'));
    expect(texts.slice(0, 4)).toEqual([
      '0000:00:06.0: map 0x1000+0x1000 (line 1)',
      '0000:00:06.0: map 0x2000+0x1000 (line 2)',
      '0000:00:06.0: 2 events left out here (map 2)',
      '0000:00:06.0: map 0x5000+0x1000 (line 5)',
    ]);
  });
});

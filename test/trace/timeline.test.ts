import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { analyzeTrace } from '../../src/trace/analyze.ts';
import { traceReportJson } from '../../src/trace/render.ts';
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

/**
 * 64 GiB of anonymous base pages on x86-2s (about 126 GiB of RAM): allocated, pinned in both forms,
 * mapped through the IOMMU by both designs, unmapped, unpinned and freed. The pages are runs of
 * memmap state, so this costs what is materialised (9 bytes a page), not an object a page.
 */
import { expect, test } from 'vitest';
import { parseScenario, registerBuiltins, runScenario } from '../../src/sim/index.ts';

registerBuiltins();

const SCENARIO = `name: base-pages-64g
platform: x86-2s
designs: [physr]
steps:
  - probe: { device: nvme0, maxSegmentSize: 2G }
  - allocate: { name: b, size: 64G }
  - pin: { name: p1, buffer: b, via: physr }
  - pin: { name: p2, buffer: b, via: sg }
  - map: { name: m1, buffer: b, device: nvme0, via: physr, layout: aligned }
  - map: { name: m2, buffer: b, device: nvme0, via: sg }
  - unmap: { mapping: m1 }
  - unmap: { mapping: m2 }
  - unmap: { mapping: p1 }
  - free: { buffer: b }
  - unmap: { mapping: p2 }
`;

test('64G of base pages allocates, pins both ways, maps through the IOMMU both ways and frees every page', async () => {
  const report = await runScenario(parseScenario(SCENARIO, 'base-pages-64g.yaml'));
  expect(report.steps.map((s) => s.error?.reason)).toEqual(report.steps.map(() => undefined));
  expect(report.status).toBe('passed');
  const notes = report.steps.map((s) => s.notes.join('\n'));
  expect(notes[1]).toMatch(/^b: 64G at VA 0x[0-9a-f]+ \(anonymous, base pages\)$/);
  expect(notes[2]).toMatch(/^p1: 16777216 pages as \d ranges, \d+ B/);
  expect(notes[3]).toMatch(/^p2: 16777216 page pointers, 134217728 B/);
  // Freed while p2 still pins every page: none goes back until its last unpin.
  expect(notes[9]).toMatch(/^b: 64G unmapped; 0 pages back to the buddy allocator \((\d+) free\)$/);
  // The counters one folio a page would give: 2^24 faults and allocations, a pin and an unpin a
  // page per pin, and every page freed by the last unpin, after the free step freed none.
  const pages = 2 ** 24;
  const count = (step: number, name: string) => report.steps[step]!.metrics[name] ?? 0;
  expect([count(1, 'mm.faults'), count(1, 'platform.folio_allocs')]).toEqual([pages, pages]);
  expect([count(2, 'platform.folio_pins'), count(3, 'platform.folio_pins')]).toEqual([pages, pages]);
  expect([count(8, 'platform.folio_unpins'), count(8, 'platform.folio_frees')]).toEqual([pages, 0]);
  expect(count(9, 'platform.folio_frees')).toBe(0);
  expect([count(10, 'platform.folio_unpins'), count(10, 'platform.folio_frees')]).toEqual([pages, pages]);
});

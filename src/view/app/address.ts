/**
 * A mapping's address spaces, top to bottom: its physical ranges (laid end to end, widths by
 * length), the DMA addresses the device got (on their own address axis: gaps are IOVA holes), the
 * page-table leaves by page size (4K/2M/1G), and the swiotlb slots it bounced through. Cards sit side
 * by side, so a scenario's packed and aligned maps can be read against each other.
 */
import type { LayoutJson, StepJson } from '../document.ts';
import { big, h, num, s, sizeText } from './dom.ts';

const WIDTH = 340;
const HEIGHT = 18;

export const LEAF_COLOURS: Record<string, string> = { '4K': '#93c5fd', '2M': '#2563eb', '1G': '#1e3a8a' };
const LEAF_SIZES: Record<string, bigint> = { '4K': 0x1000n, '2M': 0x200000n, '1G': 0x40000000n };

function ratio(part: bigint, whole: bigint): number {
  return whole === 0n ? 0 : Number((part * 1_000_000n) / whole) / 1_000_000;
}

function total(ranges: LayoutJson['phys']): bigint {
  return ranges.reduce((sum, [, len]) => sum + big(len), 0n);
}

/** Ranges end to end: each width by its share of the total length. */
function endToEnd(ranges: LayoutJson['phys'], colour: string, what: string): SVGElement {
  const svg = s('svg', { width: WIDTH, height: HEIGHT, role: 'img', 'aria-label': what });
  const sum = total(ranges);
  let x = 0;
  for (const [addr, len] of ranges) {
    const w = Math.max(ratio(big(len), sum) * WIDTH, 1);
    svg.append(
      s(
        'rect',
        { x: x.toFixed(2), y: 0, width: Math.max(w - 0.5, 0.5).toFixed(2), height: HEIGHT, fill: colour },
        s('title', {}, `${addr} + ${sizeText(big(len))}`),
      ),
    );
    x += w;
  }
  return svg;
}

/** Ranges at their addresses on one axis from the lowest start to the highest end. */
function onAxis(ranges: LayoutJson['dma'], colour: string, what: string): SVGElement {
  const svg = s('svg', { width: WIDTH, height: HEIGHT, role: 'img', 'aria-label': what });
  if (ranges.length === 0) return svg;
  let lo = big(ranges[0]![0]);
  let hi = 0n;
  for (const [a, l] of ranges) {
    const start = big(a);
    const end = start + big(l);
    if (start < lo) lo = start;
    if (end > hi) hi = end;
  }
  svg.append(s('rect', { x: 0, y: HEIGHT / 2 - 1, width: WIDTH, height: 2, fill: '#e5e7eb' }));
  for (const [addr, len] of ranges) {
    const x = ratio(big(addr) - lo, hi - lo) * WIDTH;
    const w = Math.max(ratio(big(len), hi - lo) * WIDTH, 1);
    svg.append(
      s(
        'rect',
        { x: x.toFixed(2), y: 0, width: Math.max(w - 0.5, 0.5).toFixed(2), height: HEIGHT, fill: colour },
        s('title', {}, `${addr} + ${sizeText(big(len))}`),
      ),
    );
  }
  return svg;
}

/** The leaf PTEs the step wrote, by page size (counters iommu.leaf_pte_writes.<size>). */
export function leafCounts(step: StepJson): { size: string; count: number }[] {
  return Object.keys(LEAF_SIZES)
    .map((size) => ({ size, count: step.metrics[`iommu.leaf_pte_writes.${size}`] ?? 0 }))
    .filter((l) => l.count > 0);
}

function leavesBar(leaves: { size: string; count: number }[]): SVGElement {
  const bytes = leaves.map((l) => BigInt(l.count) * LEAF_SIZES[l.size]!);
  const sum = bytes.reduce((a, b) => a + b, 0n);
  const svg = s('svg', {
    width: WIDTH,
    height: HEIGHT,
    role: 'img',
    'aria-label': leaves.map((l) => `${l.count} × ${l.size}`).join(', '),
  });
  let x = 0;
  leaves.forEach((l, i) => {
    const w = ratio(bytes[i]!, sum) * WIDTH;
    svg.append(
      s(
        'rect',
        {
          class: `leaf leaf-${l.size}`,
          x: x.toFixed(2),
          y: 0,
          width: w.toFixed(2),
          height: HEIGHT,
          fill: LEAF_COLOURS[l.size]!,
        },
        s('title', {}, `${l.count} leaf PTEs of ${l.size}`),
      ),
    );
    x += w;
  });
  return svg;
}

function lane(label: string, detail: string, graphic: SVGElement): HTMLElement {
  return h(
    'div',
    { class: 'lane' },
    h('div', { class: 'lane-label' }, h('strong', {}, label), ' ', detail),
    graphic,
  );
}

function more(count: number, shown: number): string {
  return count > shown ? ` (first ${shown} drawn)` : '';
}

/** One mapping's card. */
export function addressCard(step: StepJson, layout: LayoutJson): HTMLElement {
  const design = layout.design === 'sg' ? 'scatterlist' : 'physr';
  const leaves = leafCounts(step);
  return h(
    'article',
    { class: 'address-card', 'data-mapping': layout.name },
    h(
      'h4',
      {},
      `${layout.name}: ${design}${layout.iovaLayout === undefined ? '' : `, ${layout.iovaLayout} IOVA layout`}`,
    ),
    h('p', { class: 'muted' }, `step ${step.index + 1}, ${layout.via}`),
    lane(
      'physical',
      `${num(layout.physCount)} ranges, ${sizeText(total(layout.phys))}${more(layout.physCount, layout.phys.length)}`,
      endToEnd(layout.phys, '#64748b', 'physical ranges end to end'),
    ),
    lane(
      'DMA / IOVA',
      `${num(layout.dmaCount)} ranges${more(layout.dmaCount, layout.dma.length)}`,
      onAxis(layout.dma, layout.design === 'sg' ? '#c2571a' : '#2f6fdb', 'DMA ranges at their addresses'),
    ),
    leaves.length > 0
      ? lane(
          'page-table leaves',
          leaves.map((l) => `${num(l.count)} × ${l.size}`).join(', '),
          leavesBar(leaves),
        )
      : h(
          'p',
          { class: 'muted lane' },
          'no IOMMU leaf written (bus address, dma-direct, or a table built by another step)',
        ),
    layout.bounce.length > 0
      ? lane(
          'swiotlb slots',
          `${layout.bounce.length} bounce slot${layout.bounce.length === 1 ? '' : 's'}`,
          onAxis(layout.bounce, '#a16207', 'swiotlb slots'),
        )
      : null,
  );
}

/** Every mapping of a scenario, side by side; null when it mapped nothing. */
export function addressSpaces(steps: readonly StepJson[]): HTMLElement | null {
  const cards = steps.filter((st) => st.layout !== undefined).map((st) => addressCard(st, st.layout!));
  if (cards.length === 0) return null;
  const legend = h(
    'p',
    { class: 'legend' },
    'leaves: ',
    ...Object.entries(LEAF_COLOURS).map(([size, colour]) =>
      h('span', {}, h('span', { class: 'swatch', style: `background:${colour}` }), size),
    ),
  );
  return h('div', { class: 'address-spaces' }, legend, h('div', { class: 'cards' }, ...cards));
}

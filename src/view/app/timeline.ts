/**
 * A timeline of a scenario's steps (or a trace's events): map, DMA, unmap, flush, fault, revoke as
 * coloured marks in order, with the list beside it as the text alternative.
 */
import type { StepJson, TraceEventJson } from '../document.ts';
import { h, s } from './dom.ts';

export type EventKind = 'map' | 'dma' | 'unmap' | 'flush' | 'fault' | 'revoke' | 'other';

export const EVENT_COLOURS: Record<EventKind, string> = {
  map: '#2f6fdb',
  dma: '#16794c',
  unmap: '#7c3aed',
  flush: '#0e7490',
  fault: '#b42318',
  revoke: '#a16207',
  other: '#9ca3af',
};

const KIND_OF_OP: Record<string, EventKind> = {
  map: 'map',
  pin: 'map',
  'register-mr': 'map',
  import: 'map',
  export: 'map',
  'dma-write': 'dma',
  'dma-read': 'dma',
  unmap: 'unmap',
  flush: 'flush',
  revoke: 'revoke',
  reset: 'revoke',
};

/** A step as a timeline event: a device access that faulted is a fault. */
export function stepEvent(step: StepJson): { kind: EventKind; text: string } {
  const faulted =
    (step.metrics['iommu.faults'] ?? 0) > 0 ||
    step.expectations.some((e) => (e.what === 'faults' && e.met) || e.detail.startsWith('unexpected fault'));
  const kind: EventKind = faulted ? 'fault' : (KIND_OF_OP[step.op] ?? 'other');
  const how = step.refused ? ` refused (${step.refused.errno})` : '';
  const path = step.path === undefined ? '' : ` [${step.path === 'sg' ? 'scatterlist' : 'physr'}]`;
  return {
    kind,
    text: `${step.index + 1}. ${step.op}${path}${how}${step.notes[0] ? ` — ${step.notes[0]}` : ''}`,
  };
}

function traceKind(kind: string): EventKind {
  return kind in EVENT_COLOURS ? (kind as EventKind) : 'other';
}

const STEP = 26;

/** The strip of marks and the ordered list of the same events. */
export function timeline(events: readonly { kind: EventKind; text: string }[], label: string): HTMLElement {
  const width = Math.max(events.length * STEP + 10, 200);
  const svg = s('svg', {
    class: 'timeline-strip',
    role: 'img',
    'aria-label': `${label}: ${events.length} events`,
    width,
    height: 30,
  });
  svg.append(s('line', { x1: 4, x2: width - 4, y1: 15, y2: 15, stroke: '#c5cad3' }));
  events.forEach((e, i) => {
    const cx = 12 + i * STEP;
    svg.append(
      e.kind === 'fault'
        ? s(
            'path',
            {
              class: `event event-${e.kind}`,
              d: `M${cx - 8} 7 L${cx + 8} 23 M${cx + 8} 7 L${cx - 8} 23`,
              stroke: EVENT_COLOURS.fault,
              'stroke-width': 3,
            },
            s('title', {}, e.text),
          )
        : s(
            'circle',
            {
              class: `event event-${e.kind}`,
              cx,
              cy: 15,
              r: e.kind === 'other' ? 4 : 8,
              fill: EVENT_COLOURS[e.kind],
            },
            s('title', {}, e.text),
          ),
    );
  });
  const legend = h(
    'p',
    { class: 'legend' },
    ...(Object.keys(EVENT_COLOURS) as EventKind[]).map((k) =>
      h('span', {}, h('span', { class: 'swatch', style: `background:${EVENT_COLOURS[k]}` }), k),
    ),
  );
  const list = h(
    'ol',
    { class: 'timeline-list' },
    ...events.map((e) =>
      h(
        'li',
        { class: `kind-${e.kind}` },
        h('span', { class: 'tag', style: `background:${EVENT_COLOURS[e.kind]}` }, e.kind),
        ' ',
        e.text,
      ),
    ),
  );
  return h('div', { class: 'timeline' }, h('div', { class: 'scroll' }, svg), legend, list);
}

export function stepTimeline(steps: readonly StepJson[]): HTMLElement {
  return timeline(steps.map(stepEvent), 'steps in order');
}

export function traceTimeline(events: readonly TraceEventJson[]): HTMLElement {
  return timeline(
    events.map((e) => ({
      kind: traceKind(e.kind),
      text: `${e.time === undefined ? '' : `${e.time}: `}${e.text}`,
    })),
    'trace events in order',
  );
}

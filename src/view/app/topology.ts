/**
 * The PCI tree (host bridges → root ports and switches → endpoints) with BARs, ACS marks and IOMMU
 * groups; pick two devices (click, or Tab to a node and press Enter or Space) and the P2P path is
 * drawn with the kernel's verdict, distance and reason. The P2P matrix is a grid of the same
 * decisions, each cell a button that picks its pair.
 */
import { type HierarchyPointNode, stratify, tree } from 'd3-hierarchy';
import type { FunctionJson, P2pDecisionJson, TopologySection } from '../document.ts';
import { big, h, s, sizeText } from './dom.ts';

interface TreeDatum {
  readonly id: string;
  readonly parent: string | null;
  readonly label: string;
  readonly fn?: FunctionJson;
}

export const MAP_TYPE_TEXT: Record<string, string> = {
  'bus-address': 'P2P allowed: bus address, no IOMMU mapping (traffic stays below a switch)',
  'through-host-bridge': 'P2P allowed through the host bridge: mapped like MMIO through the IOMMU',
  'not-supported': 'P2P refused',
};

const MAP_TYPE_SHORT: Record<string, string> = {
  'bus-address': 'bus',
  'through-host-bridge': 'host bridge',
  'not-supported': 'refused',
};

/** "ACS" marks: redirect set, known without redirect, or unknown. */
export function acsMark(fn: FunctionJson): string {
  if (fn.acs.kind === 'known') {
    const flags = fn.acs.controlFlags ?? '';
    return /ReqRedir\+|CmpltRedir\+/.test(flags) ? 'ACS redirect' : 'ACS';
  }
  return fn.acs.kind === 'unknown' ? 'ACS ?' : '';
}

function barsText(fn: FunctionJson): string {
  return fn.bars
    .filter((b) => b.io !== true)
    .map((b) => `BAR${b.index} ${sizeText(big(b.size))}${b.prefetchable ? ' pf' : ''}`)
    .join(', ');
}

function group(fn: FunctionJson): number | null | undefined {
  return fn.reportedIommuGroup ?? fn.derivedIommuGroup;
}

function deviceName(
  fn: FunctionJson | undefined,
  bdf: string,
  labels: Readonly<Record<string, string>>,
): string {
  const label = Object.entries(labels).find(([, b]) => b === bdf)?.[0];
  return [label, fn?.name, bdf].filter((x) => x !== undefined && x !== null && x !== '').join(' ');
}

/** The decision text a person reads when two devices are picked. */
export function verdictText(d: P2pDecisionJson): string {
  return `${d.mapType}: ${MAP_TYPE_TEXT[d.mapType] ?? d.mapType}; distance ${d.distance}`;
}

export interface Picker {
  pick(bdf: string): void;
  pickPair(provider: string, client: string): void;
}

/** The verdict panel (a live region, so a screen reader hears the result). */
function verdictPanel(): { el: HTMLElement; show(title: string, lines: readonly string[]): void } {
  const el = h(
    'div',
    { class: 'verdict', role: 'status', 'aria-live': 'polite' },
    'Pick two devices: the first provides the memory (its BAR), the second does the DMA.',
  );
  return {
    el,
    show(title, lines) {
      el.replaceChildren(h('strong', { class: 'verdict-title' }, title), ...lines.map((l) => h('p', {}, l)));
    },
  };
}

/** The grid of decisions: providers down, clients across; a cell picks its pair. */
export function p2pGrid(
  decisions: readonly P2pDecisionJson[],
  name: (bdf: string) => string,
  onPick: (d: P2pDecisionJson) => void,
): HTMLElement {
  const devices = [...new Set(decisions.flatMap((d) => [d.provider, d.client]))].sort();
  const find = (p: string, c: string): P2pDecisionJson | undefined =>
    decisions.find((d) => d.provider === p && d.client === c);
  return h(
    'table',
    { class: 'p2p-matrix' },
    h('caption', {}, 'P2P matrix: rows provide the memory, columns do the DMA'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'provider ↓ client →'),
        ...devices.map((c) => h('th', { scope: 'col' }, name(c))),
      ),
    ),
    h(
      'tbody',
      {},
      ...devices.map((p) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, name(p)),
          ...devices.map((c) => {
            const d = find(p, c);
            if (d === undefined) return h('td', { class: 'none' }, '—');
            const button = h(
              'button',
              {
                type: 'button',
                class: `cell map-${d.mapType}`,
                title: d.reason,
                'data-provider': p,
                'data-client': c,
              },
              MAP_TYPE_SHORT[d.mapType] ?? d.mapType,
            );
            button.addEventListener('click', () => onPick(d));
            return h('td', {}, button);
          }),
        ),
      ),
    ),
  );
}

function decisionLines(d: P2pDecisionJson, name: (bdf: string) => string): string[] {
  return [
    `Verdict: ${verdictText(d)}`,
    `Path: ${d.path.map((hop) => `${name(hop.bdf)}${hop.acsRedirect ? ' (ACS redirect)' : ''}`).join(' → ')}`,
    `Reason: ${d.reason}`,
  ];
}

/** The topology section: tree, picker, verdict and matrix. */
export function topologyView(section: TopologySection): HTMLElement {
  const labels = section.labels ?? {};
  const fns = new Map(section.topology.functions.map((f) => [f.bdf, f]));
  const name = (bdf: string): string => deviceName(fns.get(bdf), bdf, labels);
  const data: TreeDatum[] = [
    { id: 'machine', parent: null, label: section.source },
    ...section.topology.hostBridges.map((hb) => ({
      id: `hb:${hb.id}`,
      parent: 'machine',
      label: `host bridge ${hb.id}${hb.numaNode === undefined || hb.numaNode === null ? '' : ` (node ${hb.numaNode})`}`,
    })),
    ...section.topology.functions.map((f) => ({
      id: f.bdf,
      parent: f.parent ?? `hb:${f.hostBridge}`,
      label: name(f.bdf),
      fn: f,
    })),
  ];
  const root = stratify<TreeDatum>()
    .id((d) => d.id)
    .parentId((d) => d.parent)(data);
  const laid = tree<TreeDatum>().nodeSize([34, 290])(root);
  const nodes = laid.descendants();
  const minX = Math.min(...nodes.map((n) => n.x));
  const maxX = Math.max(...nodes.map((n) => n.x));
  const maxY = Math.max(...nodes.map((n) => n.y));
  const width = maxY + 420;
  const height = maxX - minX + 40;
  const svg = s('svg', {
    class: 'topology',
    width,
    height,
    viewBox: `-10 ${minX - 20} ${width} ${height}`,
    role: 'group',
    'aria-label': 'PCI topology tree; Tab to a device and press Enter to pick it',
  });
  const links = new Map<string, SVGElement>();
  for (const link of laid.links()) {
    const el = s('path', {
      class: 'link',
      d: `M${link.source.y},${link.source.x} H${(link.source.y + link.target.y) / 2} V${link.target.x} H${link.target.y}`,
    });
    links.set(link.target.id!, el);
    svg.append(el);
  }
  const nodeEls = new Map<string, SVGElement>();
  const panel = verdictPanel();
  let picked: string[] = [];
  const refresh = (decision: P2pDecisionJson | undefined): void => {
    const onPath = new Set(decision?.path.map((hop) => hop.bdf) ?? []);
    for (const [id, el] of nodeEls) {
      el.classList.toggle('picked', picked.includes(id));
      el.classList.toggle('on-path', onPath.has(id));
      el.setAttribute('aria-pressed', String(picked.includes(id)));
    }
    for (const [id, el] of links) {
      const parent = laid.find((n) => n.id === id)?.parent?.id;
      el.classList.toggle('path', onPath.has(id) && parent !== undefined && onPath.has(parent));
    }
  };
  const show = (provider: string, client: string): void => {
    picked = [provider, client];
    const d = section.p2p?.find((x) => x.provider === provider && x.client === client);
    refresh(d);
    if (d === undefined) {
      panel.show(`${name(provider)} → ${name(client)}`, [
        'No P2P decision for this pair: P2P is decided between endpoints (the provider needs a memory BAR).',
      ]);
    } else {
      panel.show(`${name(provider)} → ${name(client)}`, decisionLines(d, name));
    }
  };
  const pick = (bdf: string): void => {
    if (picked.length >= 2 || picked.includes(bdf)) picked = [];
    picked.push(bdf);
    if (picked.length === 2) show(picked[0]!, picked[1]!);
    else {
      refresh(undefined);
      panel.show(`Provider: ${name(bdf)}`, ['Now pick the device that does the DMA.']);
    }
  };
  for (const node of nodes as HierarchyPointNode<TreeDatum>[]) {
    const fn = node.data.fn;
    const badges =
      fn === undefined
        ? []
        : [
            group(fn) === undefined || group(fn) === null ? '' : `grp ${group(fn)}`,
            acsMark(fn),
            barsText(fn),
          ].filter((x) => x !== '');
    const g = s(
      'g',
      fn === undefined
        ? { class: 'node structural', transform: `translate(${node.y},${node.x})` }
        : {
            class: `node kind-${fn.kind}`,
            transform: `translate(${node.y},${node.x})`,
            tabindex: 0,
            role: 'button',
            'aria-pressed': 'false',
            'data-bdf': fn.bdf,
            'aria-label': `${node.data.label}, ${fn.kind}${badges.length > 0 ? `, ${badges.join(', ')}` : ''}`,
          },
      s('circle', { r: 6 }),
      s('text', { x: 10, y: -2 }, node.data.label),
      badges.length > 0 ? s('text', { x: 10, y: 11, class: 'badges' }, badges.join(' · ')) : null,
    );
    if (fn !== undefined) {
      nodeEls.set(fn.bdf, g);
      g.addEventListener('click', () => pick(fn.bdf));
      g.addEventListener('keydown', (event) => {
        const key = (event as KeyboardEvent).key;
        if (key === 'Enter' || key === ' ') {
          event.preventDefault();
          pick(fn.bdf);
        }
      });
    }
    svg.append(g);
  }
  const parts: (HTMLElement | SVGElement)[] = [h('div', { class: 'scroll' }, svg), panel.el];
  if (section.p2p !== undefined && section.p2p.length > 0) {
    parts.push(p2pGrid(section.p2p, name, (d) => show(d.provider, d.client)));
  }
  return h('div', { class: 'topology-view' }, ...parts);
}

/** A matrix without a tree (`physr p2p --matrix`): the grid and the verdict of the picked cell. */
export function matrixView(decisions: readonly P2pDecisionJson[]): HTMLElement {
  const panel = verdictPanel();
  const name = (bdf: string): string => bdf;
  return h(
    'div',
    { class: 'matrix-view' },
    p2pGrid(decisions, name, (d) => panel.show(`${d.provider} → ${d.client}`, decisionLines(d, name))),
    panel.el,
  );
}

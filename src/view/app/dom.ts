/** A tiny DOM builder: text always goes in as text nodes, so nothing in the JSON becomes markup. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Readonly<Record<string, string | number | boolean | undefined>>;

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el: Element, attrs: Attrs, children: readonly Child[]): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  fill(el, attrs, children);
  return el;
}

/** An SVG element. */
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  fill(el, attrs, children);
  return el;
}

/** "0x1000" → 4096n (the JSON's 64-bit values). */
export function big(text: string): bigint {
  return BigInt(text);
}

const UNITS = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];

/** 4096 → "4K", 0x200000 → "2M" (exact multiples only; otherwise bytes). */
export function sizeText(bytes: bigint): string {
  let unit = 0;
  let value = bytes;
  while (unit < UNITS.length - 1 && value >= 1024n && value % 1024n === 0n) {
    value /= 1024n;
    unit++;
  }
  return `${value}${UNITS[unit]}`;
}

/** A number with thin grouping (1 234 567). */
export function num(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(2);
}

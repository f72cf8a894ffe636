/**
 * Where things are in a scenario file: YAML node ranges → 1-based line and column, dotted field
 * names, and a caret excerpt in the style of the yaml package's pretty errors.
 */
import { type Document, isMap, isNode, isScalar, isSeq, type LineCounter } from 'yaml';

export type FieldPath = readonly (string | number)[];

/** `steps[3].map.size` from ['steps', 3, 'map', 'size']. */
export function formatFieldPath(path: FieldPath): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

export interface Position {
  readonly line: number;
  readonly column: number;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}

/**
 * The source offset for a field path: the value's node when the whole path exists (or its key when
 * `atKey`), else the deepest node that does exist (e.g. the map a missing field belongs in).
 */
export function offsetOfPath(doc: Document, path: FieldPath, atKey = false): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
      if (pair === undefined) break;
      const keyOffset = rangeStart(pair.key);
      const valueOffset = rangeStart(pair.value);
      offset = (atKey ? keyOffset : (valueOffset ?? keyOffset)) ?? offset;
      node = pair.value;
      if (atKey && segment === path[path.length - 1]) return offset;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined;
}

export function positionOf(lineCounter: LineCounter, offset: number): Position {
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

/** The source line at `line` and a caret under `column`, indented, for the line after an error. */
export function sourceExcerpt(text: string, position: Position): string {
  const lines = text.split(/\r?\n/);
  const source = lines[position.line - 1];
  if (source === undefined) return '';
  const shown = source.length > 100 ? `${source.slice(0, 100)}…` : source;
  const caret = `${' '.repeat(Math.min(Math.max(position.column - 1, 0), shown.length))}^`;
  return `  ${position.line} | ${shown}\n  ${' '.repeat(String(position.line).length)} | ${caret}`;
}

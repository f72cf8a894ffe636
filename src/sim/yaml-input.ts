/**
 * YAML a user hands us (scenarios, platform files) → plain data, or ONE located {@link ScenarioError}.
 * Beyond the yaml package's syntax errors, it refuses what would otherwise escape as an internal
 * error or exhaust memory: nesting deeper than {@link MAX_YAML_DEPTH}, an alias with no anchor before
 * it, an alias inside the node it names (a cycle), and aliases that multiply the document (an
 * "alias bomb"); each at the line and column of the node at fault.
 */
import { type Document, isAlias, isMap, isNode, isPair, isSeq, LineCounter, parseDocument } from 'yaml';
import { type Errno, PhysrError, type SourceLocation } from '../core/index.ts';
import {
  type FieldPath,
  formatFieldPath,
  offsetOfPath,
  type Position,
  positionOf,
  sourceExcerpt,
} from './scenario-source.ts';

/** Deepest nesting of maps and lists accepted; a scenario needs about six. */
export const MAX_YAML_DEPTH = 64;
/** yaml's bound on alias expansion (copies of an anchored node times the aliases inside it). */
export const MAX_YAML_ALIAS_COUNT = 100;

/** A located input error with the source line and a caret, printed after the one-line form. */
export class ScenarioError extends PhysrError {
  readonly excerpt: string;

  constructor(errno: Errno, reason: string, location: SourceLocation, excerpt: string) {
    super(errno, reason, location);
    this.name = 'ScenarioError';
    this.excerpt = excerpt;
  }
}

export function isScenarioError(value: unknown): value is ScenarioError {
  return value instanceof ScenarioError;
}

/** A parsed YAML input: its text, document (for locating fields) and data. */
export interface YamlInput {
  readonly file: string;
  readonly text: string;
  readonly doc: Document;
  readonly lineCounter: LineCounter;
  readonly data: unknown;
}

/** The located error at `offset` in `text`, with `field` when one is named. */
export function errorAtOffset(
  file: string,
  text: string,
  lineCounter: LineCounter,
  offset: number,
  errno: Errno,
  reason: string,
  field = '',
): ScenarioError {
  const position: Position = positionOf(lineCounter, offset);
  const location: SourceLocation = { file, line: position.line, column: position.column };
  return new ScenarioError(
    errno,
    reason,
    field === '' ? location : { ...location, field },
    sourceExcerpt(text, position),
  );
}

/** The located error for field `path` of a parsed input (its value, or its key when `atKey`). */
export function errorAtPath(
  input: YamlInput,
  path: FieldPath,
  errno: Errno,
  reason: string,
  atKey = false,
): ScenarioError {
  const offset = offsetOfPath(input.doc, path, atKey);
  return errorAtOffset(
    input.file,
    input.text,
    input.lineCounter,
    offset,
    errno,
    reason,
    formatFieldPath(path),
  );
}

function startOf(node: unknown): number {
  return isNode(node) ? (node.range?.[0] ?? 0) : 0;
}

interface Frame {
  readonly node: unknown;
  readonly depth: number;
  readonly parent: Frame | undefined;
}

/**
 * Walks the document in its own order (keys before values, as alias resolution does) without
 * recursion, checking depth and aliases. Returns the first alias, to locate an alias bomb.
 */
function checkStructure(doc: Document, fail: (node: unknown, reason: string) => never): unknown {
  const lastAnchor = new Map<string, unknown>();
  let firstAlias: unknown;
  const stack: Frame[] = [{ node: doc.contents, depth: 0, parent: undefined }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const { node, depth } = frame;
    if (isAlias(node)) {
      firstAlias ??= node;
      const target = lastAnchor.get(node.source);
      if (target === undefined) {
        fail(node, `YAML: alias *${node.source} has no anchor &${node.source} before it`);
      }
      for (let up = frame.parent; up !== undefined; up = up.parent) {
        if (up.node === target) fail(node, `YAML: alias *${node.source} lies inside the node it names`);
      }
      continue;
    }
    if (isNode(node) && node.anchor !== undefined) lastAnchor.set(node.anchor, node);
    const children: unknown[] = [];
    if (isMap(node)) {
      for (const pair of node.items) children.push(pair.key, pair.value);
    } else if (isSeq(node)) {
      for (const item of node.items) {
        if (isPair(item)) children.push(item.key, item.value);
        else children.push(item);
      }
    } else {
      continue;
    }
    if (depth + 1 > MAX_YAML_DEPTH) {
      fail(node, `YAML: nested more than ${MAX_YAML_DEPTH} levels deep`);
    }
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push({ node: children[i], depth: depth + 1, parent: frame });
    }
  }
  return firstAlias;
}

/** yaml reports a stack overflow in its own parser as a syntax error; say what it means. */
function syntaxReason(message: string): string {
  const first = message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  if (/call stack/i.test(first)) return `YAML: nested too deeply to parse (at most ${MAX_YAML_DEPTH} levels)`;
  return `YAML: ${first}`;
}

/** Parses YAML (or JSON) text with 64-bit integers as bigints; `file` names it in errors. */
export function parseYamlInput(text: string, file: string): YamlInput {
  const lineCounter = new LineCounter();
  const at = (offset: number, reason: string): ScenarioError =>
    errorAtOffset(file, text, lineCounter, offset, 'EINVAL', reason);
  let doc: Document;
  try {
    doc = parseDocument(text, { intAsBigInt: true, lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (error) {
    if (error instanceof RangeError) throw at(0, syntaxReason(error.message));
    throw error;
  }
  const syntax = doc.errors[0];
  if (syntax !== undefined) throw at(syntax.pos[0], syntaxReason(syntax.message));
  const firstAlias = checkStructure(doc, (node, reason) => {
    throw at(startOf(node), reason);
  });
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      throw at(
        startOf(firstAlias),
        `YAML: aliases expand the document too much (more than ${MAX_YAML_ALIAS_COUNT} copies): an alias bomb?`,
      );
    }
    throw error;
  }
  return { file, text, doc, lineCounter, data };
}

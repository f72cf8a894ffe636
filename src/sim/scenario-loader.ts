/**
 * Loading a scenario: YAML text → validated {@link Scenario}, or ONE located {@link ScenarioError}
 * (the earliest problem in the file) naming file, line, column and field, with a caret excerpt.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { type Errno, PhysrError, readInputText, type SourceLocation } from '../core/index.ts';
import {
  isStepKind,
  type ScenarioFields,
  STEP_BODIES,
  type Step,
  scenarioSchema,
} from './scenario-schema.ts';
import {
  type FieldPath,
  formatFieldPath,
  offsetOfPath,
  type Position,
  positionOf,
  sourceExcerpt,
} from './scenario-source.ts';
import { isScenarioError, parseYamlInput, ScenarioError } from './yaml-input.ts';

export { isScenarioError, ScenarioError };

/** A scenario file's text and a way to locate any field in it (runtime errors use it too). */
export interface ScenarioSource {
  readonly file: string;
  readonly text: string;
  /** Line and column of a field (its value, or the nearest enclosing node when absent). */
  locate(path: FieldPath): Position;
}

export interface Scenario extends ScenarioFields {
  readonly steps: readonly Step[];
  readonly source: ScenarioSource;
}

/** Builds the located error for `path` in `source` (also used by the engine for runtime refusals). */
export function scenarioError(
  source: ScenarioSource,
  path: FieldPath,
  errno: Errno,
  reason: string,
): ScenarioError {
  const position = source.locate(path);
  const location: SourceLocation = { file: source.file, line: position.line, column: position.column };
  const field = formatFieldPath(path);
  return new ScenarioError(
    errno,
    reason,
    field === '' ? location : { ...location, field },
    sourceExcerpt(source.text, position),
  );
}

function valueAt(data: unknown, path: FieldPath): { parentIsMap: boolean; present: boolean } {
  let node: unknown = data;
  let parentIsMap = false;
  for (const segment of path) {
    if (node === null || typeof node !== 'object') return { parentIsMap: false, present: false };
    parentIsMap = !Array.isArray(node);
    node = (node as Record<string | number, unknown>)[segment];
  }
  return { parentIsMap, present: node !== undefined };
}

/** The fields a map at `path` may hold, for "unknown field" hints. */
function knownFields(path: FieldPath): string[] {
  if (path.length === 0) return Object.keys(scenarioSchema.shape);
  const kind = path[2];
  if (path.length === 3 && path[0] === 'steps' && typeof kind === 'string' && isStepKind(kind)) {
    return Object.keys(STEP_BODIES[kind].shape);
  }
  return [];
}

interface Located {
  readonly path: FieldPath;
  readonly atKey: boolean;
  readonly reason: string;
  /** A required field absent, or a field not in the format (they often come together: a typo). */
  readonly kind?: 'missing' | 'unknown';
}

/** The earliest problem in the file, except that a typo (unknown field) beats the field it misspelt. */
function chooseIssue(located: readonly Located[], offsets: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < located.length; i++) if (offsets[i]! < offsets[best]!) best = i;
  const chosen = located[best]!;
  if (chosen.kind === 'missing') {
    const parent = formatFieldPath(chosen.path.slice(0, -1));
    const typo = located.findIndex(
      (l) => l.kind === 'unknown' && formatFieldPath(l.path.slice(0, -1)) === parent,
    );
    if (typo >= 0) return typo;
  }
  return best;
}

/** Turns a zod issue into a path to point at and a plain-words reason. */
function describeIssue(issue: z.core.$ZodIssue, data: unknown): Located {
  const path: FieldPath = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
  const params: Record<string, unknown> = issue.code === 'custom' ? (issue.params ?? {}) : {};
  const unknownKeys =
    issue.code === 'unrecognized_keys'
      ? issue.keys
      : Array.isArray(params.unknownKeys)
        ? params.unknownKeys.map(String)
        : undefined;
  if (unknownKeys !== undefined && unknownKeys.length > 0) {
    const key = unknownKeys[0]!;
    const known = knownFields(path);
    const hint = known.length > 0 ? ` (known: ${known.join(', ')})` : '';
    return { path: [...path, key], atKey: true, reason: `unknown field "${key}"${hint}`, kind: 'unknown' };
  }
  const message = inUserTerms(issue.message.replace(/^Invalid input: /, ''));
  const { parentIsMap, present } = valueAt(data, path);
  const last = path[path.length - 1];
  if (!present && parentIsMap && last !== undefined) {
    return { path, atKey: false, reason: `missing field "${String(last)}": ${message}`, kind: 'missing' };
  }
  return { path: path, atKey: params.atKey === true, reason: message };
}

/** Parses and validates scenario text. `file` names it in errors and anchors relative paths. */
export function parseScenario(text: string, file: string): Scenario {
  const input = parseYamlInput(text, file);
  const { doc, lineCounter, data } = input;
  const source: ScenarioSource = {
    file,
    text,
    locate: (path) => positionOf(lineCounter, offsetOfPath(doc, path)),
  };
  const result = scenarioSchema.safeParse(data);
  if (!result.success) {
    // One error: the earliest in the file (zod's order breaks ties).
    const located = result.error.issues.map((issue) => describeIssue(issue, data));
    const offsets = located.map((l) => offsetOfPath(doc, l.path, l.atKey));
    const best = chooseIssue(located, offsets);
    const chosen = located[best]!;
    const position = positionOf(lineCounter, offsets[best]!);
    const field = formatFieldPath(chosen.path);
    throw new ScenarioError(
      'EINVAL',
      chosen.reason,
      { file, line: position.line, column: position.column, ...(field === '' ? {} : { field }) },
      sourceExcerpt(text, position),
    );
  }
  const steps = result.data.steps.map(
    (step, index): Step => ({ ...step, index, line: source.locate(['steps', index]).line }) as Step,
  );
  return { ...result.data, steps, source };
}

/** Reads and parses a scenario file; a missing file is ENOENT naming it. */
export function loadScenarioFile(path: string): Scenario {
  return parseScenario(readInputText(path, 'scenario file'), path);
}

/** The folder of built-in scenarios (`scenarios/` at the package root, from src/ or dist/). */
export const BUILTIN_SCENARIO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scenarios');

/** Names of the built-in scenarios (their file names without .yaml), sorted. */
export function builtinScenarioNames(dir = BUILTIN_SCENARIO_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => extname(f) === '.yaml' || extname(f) === '.yml')
    .map((f) => basename(f, extname(f)))
    .sort();
}

/**
 * A command-line target: a path to a file, or the name of a built-in scenario. A target that is
 * neither is ENOENT listing the built-in names.
 */
export function resolveScenarioTarget(target: string, dir = BUILTIN_SCENARIO_DIR): string {
  if (existsSync(target)) return target;
  for (const ext of ['.yaml', '.yml']) {
    const candidate = join(dir, `${target}${ext}`);
    if (existsSync(candidate)) {
      // Reports name built-ins relative to the working directory, so they read the same everywhere.
      const near = relative(process.cwd(), candidate);
      return near.startsWith('..') || isAbsolute(near) ? candidate : near;
    }
  }
  const names = builtinScenarioNames(dir);
  throw new PhysrError(
    'ENOENT',
    `no scenario file or built-in scenario "${target}" (built in: ${names.length > 0 ? names.join(', ') : 'none'})`,
  );
}

/** Loads targets (files or names); no targets means the whole built-in suite. */
export function loadScenarios(targets: readonly string[], dir = BUILTIN_SCENARIO_DIR): Scenario[] {
  const paths =
    targets.length > 0
      ? targets.map((t) => resolveScenarioTarget(t, dir))
      : builtinScenarioNames(dir).map((n) => resolveScenarioTarget(n, dir));
  return paths.map(loadScenarioFile);
}

/**
 * zod names JavaScript types ("expected object, received bigint": YAML integers parse as bigint);
 * a scenario author wrote YAML, so say it in YAML's terms.
 */
const YAML_TERMS: Record<string, string> = {
  object: 'a map of fields',
  array: 'a list',
  bigint: 'a number',
  number: 'a number',
  string: 'text',
  boolean: 'true/false',
  null: 'nothing',
  undefined: 'nothing',
};

function inUserTerms(message: string): string {
  return message.replace(/^expected (\w+), received (\w+)$/, (whole, want: string, got: string) =>
    YAML_TERMS[want] !== undefined && YAML_TERMS[got] !== undefined
      ? `expected ${YAML_TERMS[want]}, got ${YAML_TERMS[got]}`
      : whole,
  );
}

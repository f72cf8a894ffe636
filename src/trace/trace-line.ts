/**
 * One line of trace text. tracefs `trace`/`trace_pipe` print
 * `TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY` (kernel/trace/trace_output.c; FLAGS is the
 * irqs-off/need-resched/... column, absent with `options/noirq-info`; `(TGID)` after the PID with
 * `options/record-tgid`); `trace-cmd report` prints the same without (or with) FLAGS and pads the
 * event name. Comment, header and buffer notes are recognised so only real events are parsed.
 */
import { PhysrError } from '../core/index.ts';
import { EventFields, FieldError } from './event-fields.ts';
import type { TraceEvent, TraceOrigin } from './events.ts';
import { EVENT_PARSERS } from './parse-event.ts';

/**
 * From the CPU column on: `[CPU] FLAGS? SECONDS.FRACTION: EVENT: ` (TASK-PID before it is free text:
 * comms hold spaces, dashes and brackets). Unanchored, so no backtracking over the comm.
 * {@link scanHeader} finds the same match by hand (no match array or captured strings per line); this
 * expression is its definition, kept for the test that compares the two.
 */
export const HEADER =
  /-\d+\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[\d+\]\s+(?:\S{4,5}\s+)?(\d+)\.(\d+):\s+([A-Za-z_]\w*):\s*/;

/** Lines that are not events but belong in a trace: comments, trace-cmd headers, buffer notes. */
const META = /^(#|\s*$|cpus=|version\s*=|CPU\s*\d+ is empty|\s*CPU:\d+ \[LOST|##### CPU|\s*<\.\.\.>\s*$)/;
const LOST = /\[LOST (\d+) EVENTS\]/;

/** Where {@link HEADER} matched in a line: indexes into the line. */
export interface HeaderMatch {
  /** Index of the match's first character (the `-` before the PID). */
  readonly index: number;
  readonly secondsStart: number;
  /** Index of the `.` between seconds and fraction. */
  readonly dot: number;
  /** Index just past the fraction's digits. */
  readonly fractionEnd: number;
  readonly nameStart: number;
  readonly nameEnd: number;
  /** Index just past the match: where the event's body begins. */
  readonly bodyStart: number;
}

/** `\s` of a JavaScript regular expression. */
function isSpace(c: number): boolean {
  return (
    c === 32 ||
    (c >= 9 && c <= 13) ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isDash(c: number): boolean {
  return c === 45;
}

function isNotSpace(c: number): boolean {
  return !isSpace(c);
}

function isWord(c: number): boolean {
  return isWordStart(c) || isDigit(c);
}

function isWordStart(c: number): boolean {
  const lower = c | 0x20;
  return (lower >= 97 && lower <= 122) || c === 95;
}

/** Index past a run of characters passing `test` from `i` (at least `min` of them), or -1. */
function run(s: string, i: number, test: (c: number) => boolean, min = 1): number {
  let j = i;
  while (j < s.length && test(s.charCodeAt(j))) j++;
  return j - i >= min ? j : -1;
}

/** `SECONDS.FRACTION: EVENT: ` from `i`, or undefined. */
function scanTail(s: string, i: number, index: number): HeaderMatch | undefined {
  const dot = run(s, i, isDigit);
  if (dot < 0 || s.charCodeAt(dot) !== 46) return undefined;
  const fractionEnd = run(s, dot + 1, isDigit);
  if (fractionEnd < 0 || s.charCodeAt(fractionEnd) !== 58) return undefined;
  const nameStart = run(s, fractionEnd + 1, isSpace);
  if (nameStart < 0 || !isWordStart(s.charCodeAt(nameStart))) return undefined;
  const nameEnd = run(s, nameStart + 1, isWord, 0);
  if (s.charCodeAt(nameEnd) !== 58) return undefined;
  const bodyStart = run(s, nameEnd + 1, isSpace, 0);
  return { index, secondsStart: i, dot, fractionEnd, nameStart, nameEnd, bodyStart };
}

/** {@link HEADER} tried at `i` (a `-`). */
function scanAt(s: string, i: number): HeaderMatch | undefined {
  let j = run(s, i + 1, isDigit);
  if (j < 0) return undefined;
  j = run(s, j, isSpace);
  if (j < 0) return undefined;
  if (s.charCodeAt(j) === 40) {
    // `(TGID) `: digits or dashes in brackets.
    let k = run(s, j + 1, isSpace, 0);
    const digits = run(s, k, isDigit);
    k = digits >= 0 ? digits : run(s, k, isDash);
    if (k < 0 || s.charCodeAt(k) !== 41) return undefined;
    j = run(s, k + 1, isSpace);
    if (j < 0) return undefined;
  }
  if (s.charCodeAt(j) !== 91) return undefined;
  j = run(s, j + 1, isDigit);
  if (j < 0 || s.charCodeAt(j) !== 93) return undefined;
  j = run(s, j + 1, isSpace);
  if (j < 0) return undefined;
  // FLAGS: 4 or 5 non-space characters then space; without them (trace-cmd) the timestamp follows.
  const flagsEnd = run(s, j, isNotSpace);
  if (flagsEnd - j === 4 || flagsEnd - j === 5) {
    const afterFlags = run(s, flagsEnd, isSpace);
    const m = afterFlags < 0 ? undefined : scanTail(s, afterFlags, i);
    if (m !== undefined) return m;
  }
  return scanTail(s, j, i);
}

/** The first match of {@link HEADER} in `s`, found without a regular expression. */
export function scanHeader(s: string): HeaderMatch | undefined {
  for (let i = s.indexOf('-'); i >= 0; i = s.indexOf('-', i + 1)) {
    const m = scanAt(s, i);
    if (m !== undefined) return m;
  }
  return undefined;
}

/**
 * An event's origin: its line, with the printed timestamp cut from the line only when asked for
 * (most events never are).
 */
class LineOrigin implements TraceOrigin {
  constructor(
    readonly line: number,
    readonly timeUs: number,
    readonly text: string,
    private readonly timeStart: number,
    private readonly timeEnd: number,
  ) {}

  get time(): string {
    return this.text.slice(this.timeStart, this.timeEnd);
  }
}

/** Event names physr reads by length, to find a line's name without cutting it from the line. */
const NAMES_BY_LENGTH = new Map<number, string[]>();
for (const name of EVENT_PARSERS.keys()) {
  const list = NAMES_BY_LENGTH.get(name.length) ?? [];
  list.push(name);
  NAMES_BY_LENGTH.set(name.length, list);
}

function knownName(s: string, start: number, end: number): string | undefined {
  const list = NAMES_BY_LENGTH.get(end - start);
  if (list !== undefined) for (const name of list) if (s.startsWith(name, start)) return name;
  return undefined;
}

/** Seconds and fraction of a timestamp in microseconds (the fraction cut or padded to 6 digits). */
function timestampUs(s: string, m: HeaderMatch): number {
  let seconds = 0;
  if (m.dot - m.secondsStart <= 15)
    for (let i = m.secondsStart; i < m.dot; i++) seconds = seconds * 10 + (s.charCodeAt(i) - 48);
  else seconds = Number(s.slice(m.secondsStart, m.dot));
  let micros = 0;
  for (let k = 0; k < 6; k++) {
    const i = m.dot + 1 + k;
    micros = micros * 10 + (i < m.fractionEnd ? s.charCodeAt(i) - 48 : 0);
  }
  return seconds * 1e6 + micros;
}

export type LineResult =
  | { readonly type: 'event'; readonly event: TraceEvent }
  | { readonly type: 'unknown'; readonly name: string }
  | { readonly type: 'meta'; readonly lostEvents: number };

/**
 * Parses one line. Unknown event names come back as `unknown`; a known event whose body is not what
 * its print format makes, or a line that is neither an event nor trace metadata, throws a
 * PhysrError located `file:line` with the event name as the field.
 */
export function parseTraceLine(text: string, file: string, line: number): LineResult {
  const m = scanHeader(text);
  if (m === undefined) {
    if (META.test(text)) {
      const lost = LOST.exec(text);
      return { type: 'meta', lostEvents: lost === null ? 0 : Number(lost[1]) };
    }
    throw new PhysrError('EINVAL', 'not a trace event line (TASK-PID [CPU] TIMESTAMP: EVENT: ...)', {
      file,
      line,
    });
  }
  const name = knownName(text, m.nameStart, m.nameEnd);
  if (name === undefined) return { type: 'unknown', name: text.slice(m.nameStart, m.nameEnd) };
  const parser = EVENT_PARSERS.get(name)!;
  const at = new LineOrigin(line, timestampUs(text, m), text, m.secondsStart, m.fractionEnd);
  try {
    return { type: 'event', event: parser(new EventFields(text, m.bodyStart), name, at) };
  } catch (error) {
    if (error instanceof FieldError)
      throw new PhysrError('EINVAL', error.reason, { file, line, field: name });
    throw error;
  }
}

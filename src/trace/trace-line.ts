/**
 * One line of trace text. tracefs `trace`/`trace_pipe` print
 * `TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY` (kernel/trace/trace_output.c; FLAGS is the
 * irqs-off/need-resched/... column, absent with `options/noirq-info`; `(TGID)` after the PID with
 * `options/record-tgid`); `trace-cmd report` prints the same without (or with) FLAGS and pads the
 * event name. Comment, header and buffer notes are recognised so only real events are parsed.
 */
import { PhysrError } from '../core/index.ts';
import { EventFields, FieldError } from './event-fields.ts';
import type { TraceEvent } from './events.ts';
import { EVENT_PARSERS } from './parse-event.ts';

/**
 * From the CPU column on: `[CPU] FLAGS? SECONDS.FRACTION: EVENT: ` (TASK-PID before it is free text:
 * comms hold spaces, dashes and brackets). Unanchored, so no backtracking over the comm.
 */
const HEADER = /-\d+\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[\d+\]\s+(?:\S{4,5}\s+)?(\d+)\.(\d+):\s+([A-Za-z_]\w*):\s*/;

/** Lines that are not events but belong in a trace: comments, trace-cmd headers, buffer notes. */
const META = /^(#|\s*$|cpus=|version\s*=|CPU\s*\d+ is empty|\s*CPU:\d+ \[LOST|##### CPU|\s*<\.\.\.>\s*$)/;
const LOST = /\[LOST (\d+) EVENTS\]/;

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
  const m = HEADER.exec(text);
  if (m === null) {
    if (META.test(text)) {
      const lost = LOST.exec(text);
      return { type: 'meta', lostEvents: lost === null ? 0 : Number(lost[1]) };
    }
    throw new PhysrError('EINVAL', 'not a trace event line (TASK-PID [CPU] TIMESTAMP: EVENT: ...)', {
      file,
      line,
    });
  }
  const name = m[3]!;
  const parser = EVENT_PARSERS.get(name);
  if (parser === undefined) return { type: 'unknown', name };
  const seconds = m[1]!;
  const fraction = m[2]!;
  const timeUs = Number(seconds) * 1e6 + Number(fraction.padEnd(6, '0').slice(0, 6));
  try {
    const event = parser(new EventFields(text.slice(m.index + m[0].length)), name, {
      line,
      time: `${seconds}.${fraction}`,
      timeUs,
      text,
    });
    return { type: 'event', event };
  } catch (error) {
    if (error instanceof FieldError)
      throw new PhysrError('EINVAL', error.reason, { file, line, field: name });
    throw error;
  }
}

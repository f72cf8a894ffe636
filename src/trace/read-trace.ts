/**
 * Streaming a trace: line by line through `readline` over a file stream, so a trace of any size is
 * read in bounded memory. A regular file or a FIFO (`trace_pipe`, a shell pipe) is read; a directory
 * or device is refused before reading with a located error.
 */
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { checkInputFile, isPhysrError, type PhysrError } from '../core/index.ts';
import type { TraceEvent } from './events.ts';
import { parseTraceLine } from './trace-line.ts';

export interface ReadStats {
  lines: number;
  events: number;
  /** Lines of events physr does not read, by event name. */
  readonly unknown: Map<string, number>;
  /** Events the ring buffer dropped (`[LOST n EVENTS]`). */
  lostEvents: number;
  /** Malformed lines skipped under keepGoing. */
  readonly skipped: PhysrError[];
  /** Malformed lines skipped (all of them; `skipped` keeps the first ones). */
  skippedLines: number;
  bytes: number;
}

export interface ReadOptions {
  /** Report and skip malformed lines instead of stopping at the first. */
  readonly keepGoing?: boolean;
  /** Called with bytes read so far (for a progress bar), at most every 64 KiB. */
  readonly onProgress?: (bytes: number) => void;
  /** Most malformed lines kept for the report under keepGoing (all are counted). */
  readonly maxSkippedKept?: number;
}

/** Checks that `path` can be streamed as a trace; returns its size (0 for a FIFO). */
export function checkTraceInput(path: string): number {
  let isFifo = false;
  try {
    isFifo = statSync(path).isFIFO();
  } catch {
    isFifo = false;
  }
  if (isFifo) return 0;
  return checkInputFile(path, 'trace', Number.MAX_SAFE_INTEGER);
}

export function newReadStats(): ReadStats {
  return { lines: 0, events: 0, unknown: new Map(), lostEvents: 0, skipped: [], skippedLines: 0, bytes: 0 };
}

/** Feeds every line of `input` to the parser and every event to `onEvent`, in order. */
export async function readTraceStream(
  input: Readable,
  file: string,
  onEvent: (event: TraceEvent) => void,
  options: ReadOptions = {},
): Promise<ReadStats> {
  const stats = newReadStats();
  const keep = options.maxSkippedKept ?? 1000;
  let lastReport = 0;
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let failure: unknown;
  await new Promise<void>((resolve, reject) => {
    rl.on('line', (text) => {
      if (failure !== undefined) return;
      stats.lines++;
      stats.bytes += text.length + 1;
      try {
        const r = parseTraceLine(text, file, stats.lines);
        if (r.type === 'event') {
          stats.events++;
          onEvent(r.event);
        } else if (r.type === 'unknown') {
          stats.unknown.set(r.name, (stats.unknown.get(r.name) ?? 0) + 1);
        } else {
          stats.lostEvents += r.lostEvents;
        }
      } catch (error) {
        if (options.keepGoing === true && isPhysrError(error) && error.location?.line === stats.lines) {
          stats.skippedLines++;
          if (stats.skipped.length < keep) stats.skipped.push(error);
        } else {
          failure = error;
          rl.close();
          input.destroy();
        }
      }
      if (options.onProgress !== undefined && stats.bytes - lastReport >= 65536) {
        lastReport = stats.bytes;
        options.onProgress(stats.bytes);
      }
    });
    rl.on('close', () => (failure === undefined ? resolve() : reject(failure)));
    input.on('error', (error) => {
      failure ??= error;
      reject(failure);
    });
  });
  return stats;
}

/** Streams the trace file at `path` (checked first) through {@link readTraceStream}. */
export async function readTraceFile(
  path: string,
  onEvent: (event: TraceEvent) => void,
  options: ReadOptions = {},
): Promise<ReadStats> {
  checkTraceInput(path);
  return readTraceStream(createReadStream(path, { highWaterMark: 1 << 20 }), path, onEvent, options);
}

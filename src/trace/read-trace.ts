/**
 * Streaming a trace: line by line over a file stream, so a trace of any size is read in bounded
 * memory. Lines are cut from the byte chunks and decoded one by one (not with `readline`, whose
 * lines are slices of a whole decoded chunk: a line kept for a finding or a live mapping would keep
 * its chunk alive too); a line longer than {@link MAX_LINE_BYTES} is an error, so input without
 * newlines cannot grow memory either. A regular file or a FIFO (`trace_pipe`, a shell pipe) is read; a directory
 * or device is refused before reading with a located error.
 */
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { checkInputFile, fail, isPhysrError, type PhysrError } from '../core/index.ts';
import type { TraceEvent } from './events.ts';
import { parseTraceLine } from './trace-line.ts';

/** Longest line read (a dma_map_sg line of 128 entries is about 8 KiB). */
export const MAX_LINE_BYTES = 1 << 20;

/** Cuts byte chunks into lines (`\n`, a `\r` before it dropped), each decoded on its own. */
class LineSplitter {
  private rest: Buffer | undefined;

  constructor(
    private readonly onLine: (text: string, bytes: number) => void,
    private readonly file: string,
  ) {}

  push(chunk: Buffer, stopped: () => boolean): void {
    let buf = chunk;
    if (this.rest !== undefined) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = undefined;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
      this.onLine(buf.toString('utf8', start, end), nl + 1 - start);
      start = nl + 1;
      if (stopped()) return;
    }
    if (start < buf.length) {
      if (buf.length - start > MAX_LINE_BYTES)
        fail('EFBIG', `a line longer than ${MAX_LINE_BYTES} bytes: not trace text`, { file: this.file });
      this.rest = Buffer.from(buf.subarray(start));
    }
  }

  end(): void {
    if (this.rest !== undefined && this.rest.length > 0)
      this.onLine(this.rest.toString('utf8'), this.rest.length);
    this.rest = undefined;
  }
}

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
  let failure: unknown;
  const onLine = (text: string, bytes: number): void => {
    stats.lines++;
    stats.bytes += bytes;
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
      }
    }
    if (options.onProgress !== undefined && stats.bytes - lastReport >= 65536) {
      lastReport = stats.bytes;
      options.onProgress(stats.bytes);
    }
  };
  const splitter = new LineSplitter(onLine, file);
  await new Promise<void>((resolve, reject) => {
    const stop = (error: unknown) => {
      failure ??= error;
      input.destroy();
      reject(failure);
    };
    input.on('data', (chunk: Buffer | string) => {
      if (failure !== undefined) return;
      try {
        splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, () => failure !== undefined);
      } catch (error) {
        failure ??= error;
      }
      if (failure !== undefined) stop(failure);
    });
    input.on('end', () => {
      if (failure === undefined) {
        try {
          splitter.end();
        } catch (error) {
          failure ??= error;
        }
      }
      if (failure === undefined) resolve();
      else reject(failure);
    });
    input.on('error', stop);
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

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatError, isPhysrError } from '../../src/core/index.ts';
import type { TraceEvent } from '../../src/trace/events.ts';
import { readTraceFile, readTraceStream } from '../../src/trace/read-trace.ts';

const GOOD =
  '  a-1 [000] .....  1.000001: dma_unmap_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=4096 attrs=';
const BAD =
  '  a-1 [000] .....  1.000002: dma_unmap_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=xyz size=4096 attrs=';

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    if (isPhysrError(error)) return formatError(error);
    throw error;
  }
  return 'no error';
}

describe('streaming a trace', () => {
  it('stops at the first malformed line with file:line: event: reason', async () => {
    const input = Readable.from([`${GOOD}\n${BAD}\n${GOOD}\n`]);
    expect(await errorOf(readTraceStream(input, 'x.txt', () => {}))).toBe(
      'x.txt:2: dma_unmap_phys: EINVAL: dma_addr=xyz is not a 64-bit hex number',
    );
  });
  it('with keepGoing reports the bad line and reads on', async () => {
    const events: TraceEvent[] = [];
    const stats = await readTraceStream(
      Readable.from([`${GOOD}\n${BAD}\n${GOOD}\nfoo_bar-1 [000] 2.0: sched_x: a=1\n`]),
      'x.txt',
      (e) => events.push(e),
      {
        keepGoing: true,
      },
    );
    expect(events.map((e) => e.at.line)).toEqual([1, 3]);
    expect(stats.skippedLines).toBe(1);
    expect(stats.skipped.map(formatError)).toEqual([
      'x.txt:2: dma_unmap_phys: EINVAL: dma_addr=xyz is not a 64-bit hex number',
    ]);
    expect([...stats.unknown]).toEqual([['sched_x', 1]]);
  });
  it('input without newlines cannot grow memory: a line over 1 MiB is an error', async () => {
    const input = Readable.from([Buffer.alloc(600_000, 0x41), Buffer.alloc(600_000, 0x41)]);
    expect(await errorOf(readTraceStream(input, 'x.txt', () => {}))).toBe(
      'x.txt: EFBIG: a line longer than 1048576 bytes: not trace text',
    );
  });
  it('CRLF line ends and a last line without a newline are read', async () => {
    const events: TraceEvent[] = [];
    await readTraceStream(Readable.from([`${GOOD}\r\n${GOOD}`]), 'x.txt', (e) => events.push(e));
    expect(events.map((e) => e.at.line)).toEqual([1, 2]);
    expect(events[0]!.at.text.endsWith('attrs=')).toBe(true);
  });
  it('refuses a directory before reading, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-trace-'));
    expect(await errorOf(readTraceFile(dir, () => {}))).toBe(
      `${dir}: EINVAL: trace "${dir}" is a directory, not a regular file`,
    );
  });
  it('refuses a character device', async () => {
    expect(await errorOf(readTraceFile('/dev/null', () => {}))).toContain('is a character device');
  });
  it('reads a FIFO, as trace_pipe is read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-trace-'));
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const writer = new Promise<void>((resolve) => {
      setImmediate(() => {
        writeFileSync(fifo, `${GOOD}\n${GOOD}\n`);
        resolve();
      });
    });
    const events: TraceEvent[] = [];
    const [stats] = await Promise.all([readTraceFile(fifo, (e) => events.push(e)), writer]);
    expect(stats.events).toBe(2);
  });
});

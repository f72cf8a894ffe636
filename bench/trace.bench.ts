/**
 * `trace`: replaying a kernel DMA trace.
 *  - events per CPU-second, parse + per-device replay (target >= 300,000 on one core), streaming a
 *    generated tracefs file of dma_map_phys/dma_unmap_phys pairs with a dma_map_sg list every 64 events.
 *    "On one core" is measured as this process's own CPU time (`process.cpuUsage()`, user + system),
 *    so other load on a shared machine does not count against it; the wall-clock rate and the CPU
 *    share (CPU time / wall time) are printed beside it to show how much the machine interfered;
 *  - peak heap while streaming, at two trace sizes: bounded memory means the larger trace needs no
 *    more heap (target: ratio <= 1.5 for 4x the events).
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { readTraceFile } from '../src/trace/read-trace.ts';
import { TraceReplay } from '../src/trace/replay.ts';
import { type BenchContext, type Benchmark, collectGarbage, type Figure, figure } from './harness.ts';

const DEV = '0000:41:00.0';

/** Writes `events` lines as the 6.18 kernel prints them; returns the file's path. */
export async function writeTrace(dir: string, events: number): Promise<string> {
  const path = join(dir, `trace-${events}.txt`);
  const out = createWriteStream(path);
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve()));
  await write('# tracer: nop\n#\n');
  let t = 100_000_000;
  for (let i = 0; i < events; i += 2) {
    const addr = (0x1_0000_0000 + (i % 65536) * 0x2000).toString(16);
    const ts = () => `${Math.floor(t / 1e6)}.${String(t++ % 1e6).padStart(6, '0')}`;
    if (i % 64 === 0) {
      const phys = `{0x${addr},0x${(0x2_0000_0000 + i * 0x1000).toString(16)}}`;
      await write(
        `          fio-4242    [003] .....  ${ts()}: dma_map_sg: ${DEV} dir=FROM_DEVICE nents=2/2 ents=2/2 dma_addrs=${phys} sizes={0x1000,0x1000} phys_addrs=${phys} attrs=\n` +
          `          fio-4242    [003] .....  ${ts()}: dma_unmap_sg: ${DEV} dir=FROM_DEVICE phys_addrs=${phys} attrs=\n`,
      );
      continue;
    }
    await write(
      `          fio-4242    [003] .....  ${ts()}: dma_map_phys: ${DEV} dir=TO_DEVICE dma_addr=${addr} size=4096 phys_addr=${addr} attrs=\n` +
        `          fio-4242    [003] .....  ${ts()}: dma_unmap_phys: ${DEV} dir=TO_DEVICE dma_addr=${addr} size=4096 attrs=\n`,
    );
  }
  await new Promise<void>((resolve) => out.end(() => resolve()));
  return path;
}

/** One replay: events per CPU-second and per wall second, and the peak heap seen while streaming. */
export async function replayOnce(
  path: string,
): Promise<{ rate: number; wallRate: number; cpuShare: number; peakHeap: number; events: number }> {
  collectGarbage();
  // getHeapStatistics: the same figure as memoryUsage().heapUsed without reading the RSS each time.
  let peak = getHeapStatistics().used_heap_size;
  const replay = new TraceReplay();
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const stats = await readTraceFile(path, (e) => replay.onEvent(e), {
    onProgress: () => {
      const h = getHeapStatistics().used_heap_size;
      if (h > peak) peak = h;
    },
  });
  replay.finish();
  const cpu = process.cpuUsage(cpuStart);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    rate: stats.events / cpuSeconds,
    wallRate: stats.events / seconds,
    cpuShare: cpuSeconds / seconds,
    peakHeap: peak,
    events: stats.events,
  };
}

export const traceBenchmark: Benchmark = {
  name: 'trace',
  description: 'physr trace: parse + replay events a second, peak heap while streaming',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const dir = mkdtempSync(join(tmpdir(), 'physr-bench-trace-'));
    try {
      const small = ctx.size(250_000, 2_000);
      const large = small * 4;
      const smallPath = await writeTrace(dir, small);
      const largePath = await writeTrace(dir, large);
      // Each run streams 1.25M events: at most 3 runs whatever --runs asks.
      const runs = Math.min(ctx.runs, 3);
      const rates: number[] = [];
      const wallRates: number[] = [];
      const cpuShares: number[] = [];
      const peaksLarge: number[] = [];
      const peaksSmall: number[] = [];
      for (let i = 0; i < runs + ctx.warmup; i++) {
        const s = await replayOnce(smallPath);
        const l = await replayOnce(largePath);
        if (i < ctx.warmup) continue;
        rates.push(l.rate);
        wallRates.push(l.wallRate);
        cpuShares.push(l.cpuShare);
        peaksSmall.push(s.peakHeap);
        peaksLarge.push(l.peakHeap);
      }
      const mib = (b: number) => b / 1024 / 1024;
      return [
        figure('trace replay events per CPU-second', 'events/s', rates, {
          target: { op: '>=', value: 300_000, label: '>= 3e5 (one core)' },
          note: `${large} events; this process's CPU time (user+sys), whatever else the machine runs`,
        }),
        figure('trace replay events per wall second', 'events/s', wallRates, {
          note: 'inflated by other load: see the CPU share',
        }),
        figure('CPU share while replaying (CPU time / wall time)', 'ratio', cpuShares, {
          note: 'below 1: the process waited (other load, I/O); GC threads can push it above 1',
        }),
        figure('peak heap while replaying', 'MiB', peaksLarge.map(mib), { note: `${large} events` }),
        figure(
          'peak heap, 4x the events against 1x',
          'ratio',
          peaksLarge.map((p, i) => p / peaksSmall[i]!),
          { target: { op: '<=', value: 1.5, label: '<= 1.5 (bounded)' } },
        ),
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { createCountProgress, createProgress, parseScenario } from '../../src/sim/index.ts';

const scenario = parseScenario('name: p\nplatform: core-only\nsteps:\n  - flush: {}\n', 'p.yaml');

function fakeStream(isTTY: boolean): PassThrough & { isTTY: boolean; columns: number } {
  const stream = Object.assign(new PassThrough(), { isTTY, columns: 80 });
  stream.resume();
  return stream;
}

describe('progress', () => {
  test('quiet when stderr is not a terminal, however long the run', async () => {
    let t = 0;
    const stream = fakeStream(false);
    const progress = createProgress({ totalSteps: 3, stream, now: () => t });
    for (let i = 0; i <= 3; i++, t += 5000) await progress.onStep(scenario, i, 3);
    progress.stop();
    expect(progress.shown()).toBe(false);
  });

  test('on a terminal: nothing for the first second, then a bar', async () => {
    let t = 0;
    const stream = fakeStream(true);
    const progress = createProgress({ totalSteps: 3, stream, now: () => t });
    await progress.onStep(scenario, 0, 3);
    t = 900;
    await progress.onStep(scenario, 1, 3);
    expect(progress.shown()).toBe(false);
    t = 1500;
    await progress.onStep(scenario, 2, 3);
    expect(progress.shown()).toBe(true);
    progress.stop();
  });
});

describe('count progress (physr trace reading a large file)', () => {
  test('a bar on a terminal after the delay; never on a pipe; never for an unknown total (a FIFO)', () => {
    let t = 0;
    const tty = createCountProgress({ total: 1000, unit: 'trace', stream: fakeStream(true), now: () => t });
    tty.update(100);
    expect(tty.shown()).toBe(false);
    t = 1500;
    tty.update(500);
    expect(tty.shown()).toBe(true);
    tty.stop();
    const pipe = createCountProgress({ total: 1000, unit: 'trace', stream: fakeStream(false), now: () => t });
    t = 5000;
    pipe.update(500);
    expect(pipe.shown()).toBe(false);
    const fifo = createCountProgress({ total: 0, unit: 'trace', stream: fakeStream(true), now: () => t });
    t = 9000;
    fifo.update(500);
    expect(fifo.shown()).toBe(false);
  });
});

/**
 * A progress bar for long runs: shown on stderr only when it is a terminal, and only once the run
 * has taken more than a second, so short runs and pipes stay quiet.
 */
import cliProgress from 'cli-progress';
import type { RunOptions } from './engine.ts';

/** Where the bar goes: stderr, or any writable that says whether it is a terminal. */
export type ProgressStream = NodeJS.WritableStream & { readonly isTTY?: boolean };

export interface ProgressOptions {
  readonly totalSteps: number;
  readonly stream?: ProgressStream;
  readonly delayMs?: number;
  readonly now?: () => number;
}

export interface Progress {
  readonly onStep: NonNullable<RunOptions['onStep']>;
  /** True once the bar has been drawn. */
  readonly shown: () => boolean;
  stop(): void;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const delay = options.delayMs ?? 1000;
  const start = now();
  let done = 0;
  let bar: cliProgress.SingleBar | undefined;
  return {
    onStep: async (scenario, index) => {
      if (index > 0) done++;
      if (stream.isTTY !== true) return;
      if (bar === undefined && now() - start > delay) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: ' {bar} {value}/{total} steps  {scenario}',
            hideCursor: true,
            clearOnComplete: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(options.totalSteps, done, { scenario: scenario.name });
      }
      if (bar !== undefined) {
        bar.update(done, { scenario: scenario.name });
        // Let the terminal repaint between synchronous steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
    shown: () => bar !== undefined,
    stop: () => bar?.stop(),
  };
}

/** A counting bar (e.g. bytes of a trace read), with the same rules: a terminal only, after a delay. */
export interface CountProgress {
  update(value: number): void;
  /** True once the bar has been drawn. */
  readonly shown: () => boolean;
  stop(): void;
}

export function createCountProgress(options: {
  readonly total: number;
  readonly unit: string;
  readonly stream?: ProgressStream;
  readonly delayMs?: number;
  readonly now?: () => number;
}): CountProgress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const delay = options.delayMs ?? 1000;
  const start = now();
  let bar: cliProgress.SingleBar | undefined;
  return {
    update: (value) => {
      if (stream.isTTY !== true || options.total <= 0) return;
      if (bar === undefined && now() - start > delay) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: ` {bar} {percentage}% of ${options.unit}`,
            hideCursor: true,
            clearOnComplete: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(options.total, value);
      }
      bar?.update(Math.min(value, options.total));
    },
    shown: () => bar !== undefined,
    stop: () => bar?.stop(),
  };
}

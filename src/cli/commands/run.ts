/** `physr run [FILE|NAME ...]`: run scenarios (default: the built-in suite) and print the report. */
import { type Command, CommanderError } from 'commander';
import { checkOutputPath, fail, formatError, parseAddress, writeOutputText } from '../../core/index.ts';
import {
  checkPlatforms,
  createProgress,
  isScenarioError,
  loadScenarios,
  type RunReport,
  registerBuiltins,
  renderRunHtml,
  renderRunJson,
  renderRunText,
  runPassed,
  runSuite,
  type Scenario,
} from '../../sim/index.ts';
import { createTraceWriter, type TraceWriter } from '../../trace/index.ts';

/** Exit status when a scenario file is malformed (as for any located input error). */
export const EXIT_BAD_INPUT = 2;
/** Exit status when a scenario's expectation fails or a step errors. */
export const EXIT_FAILED = 1;

/**
 * Loads and checks scenarios. A malformed file prints its one located line and the caret excerpt on
 * stderr and ends the command with status 2.
 */
export function loadForCli(targets: readonly string[]): Scenario[] {
  registerBuiltins();
  try {
    const scenarios = loadScenarios(targets);
    checkPlatforms(scenarios);
    return scenarios;
  } catch (error) {
    if (!isScenarioError(error)) throw error;
    process.stderr.write(`physr: ${formatError(error)}\n${error.excerpt}\n`);
    throw new CommanderError(EXIT_BAD_INPUT, 'physr.scenario', formatError(error));
  }
}

/** Runs scenarios with a progress bar on a terminal when the run is long. */
export async function runForCli(
  scenarios: readonly Scenario[],
  seed: bigint | undefined,
  trace?: TraceWriter,
  timingRepetitions?: number,
): Promise<RunReport> {
  const progress = createProgress({ totalSteps: scenarios.reduce((n, s) => n + s.steps.length, 0) });
  const onStep: typeof progress.onStep =
    trace === undefined
      ? progress.onStep
      : async (scenario, index, total) => {
          if (index === 0) trace.comment(`scenario ${scenario.name}`);
          await progress.onStep(scenario, index, total);
        };
  try {
    return await runSuite(scenarios, {
      onStep,
      ...(seed === undefined ? {} : { seed }),
      ...(trace === undefined ? {} : { traceSink: trace.sink }),
      ...(timingRepetitions === undefined ? {} : { timingRepetitions }),
    });
  } finally {
    progress.stop();
  }
}

export function parseSeedOption(text: string | undefined): bigint | undefined {
  return text === undefined ? undefined : parseAddress(text, '--seed', { field: '--seed' });
}

interface RunFlags {
  readonly json?: boolean;
  readonly html?: string;
  readonly seed?: string;
  readonly traceOut?: string;
  readonly repeat: string;
}

/** Default repetitions of the compared scenarios for the timing line. */
export const DEFAULT_TIMING_REPETITIONS = 5;

/** `--repeat N`: 0 (no timing) to 100 repetitions. */
export function parseRepeatOption(text: string): number {
  const n = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 0 && n <= 100)) fail('EINVAL', `--repeat: expected a count 0..100, not "${text}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run scenarios and report what happened, every expectation, and physr vs scatterlist')
    .argument('[scenarios...]', 'scenario files or built-in names (none: the whole built-in suite)')
    .option('--json', 'print the report as JSON (64-bit values as "0x…" strings)')
    .option(
      '--html <file>',
      'also write a self-contained interactive HTML report (charts, timeline, address spaces) to FILE',
    )
    .option('--seed <n>', "override every scenario's seed")
    .option(
      '--repeat <n>',
      'time map+unmap over N runs of the scenarios that ran both designs (0: no timing)',
      String(DEFAULT_TIMING_REPETITIONS),
    )
    .option(
      '--trace-out <file>',
      "write the model's DMA activity as Linux 6.18+ trace text (physr trace reads it)",
    )
    .addHelpText(
      'after',
      '\nExit status: 0 all passed, 1 an expectation failed, 2 a scenario file is malformed.',
    )
    .action(async (targets: string[], flags: RunFlags) => {
      const seed = parseSeedOption(flags.seed);
      const repeat = parseRepeatOption(flags.repeat);
      if (flags.html !== undefined) checkOutputPath(flags.html, '--html');
      if (flags.traceOut !== undefined) checkOutputPath(flags.traceOut, '--trace-out');
      const scenarios = loadForCli(targets);
      const trace = flags.traceOut === undefined ? undefined : createTraceWriter();
      const report = await runForCli(scenarios, seed, trace, repeat === 0 ? undefined : repeat);
      if (flags.traceOut !== undefined) writeOutputText(flags.traceOut, trace!.text(), '--trace-out');
      process.stdout.write(flags.json === true ? renderRunJson(report) : renderRunText(report));
      if (flags.html !== undefined) {
        const command = ['physr', 'run', ...targets].join(' ');
        writeOutputText(flags.html, await renderRunHtml(report, { command }), '--html');
      }
      if (!runPassed(report)) {
        throw new CommanderError(EXIT_FAILED, 'physr.failed', 'a scenario failed');
      }
    });
}

/**
 * `physr trace FILE`: replay a real DMA trace (tracefs `trace`/`trace_pipe` text or `trace-cmd
 * report`): what it mapped, which misuse it shows, and what physr would change on a model machine.
 */
import { statSync } from 'node:fs';
import { type Command, CommanderError, Option } from 'commander';
import { checkOutputPath, fail, Metrics, writeOutputText } from '../../core/index.ts';
import { Machine } from '../../dma/index.ts';
import { deviceLabels, resolveDevice } from '../../platform/index.ts';
import { createCountProgress, listPlatforms, platformFactory, registerBuiltins } from '../../sim/index.ts';
import {
  analyzeTrace,
  checkTraceInput,
  type IommuMode,
  type ModelTarget,
  renderTraceHtml,
  renderTraceJson,
  renderTraceText,
} from '../../trace/index.ts';

/** Exit status with --fail-on-findings when the trace shows misuse (severity error). */
export const EXIT_FINDINGS = 1;

/** How standard input (`physr trace -`) is named in the report and in located errors. */
export const STDIN_NAME = '<stdin>';

interface TraceFlags {
  readonly json?: boolean;
  readonly html?: string;
  readonly keepGoing?: boolean;
  readonly kernel?: string;
  readonly platform: string;
  readonly iommu?: IommuMode;
  readonly device?: string;
  readonly model: boolean;
  readonly failOnFindings?: boolean;
}

/** The model machine for one design: a fresh platform instance (own Metrics) per call. */
function modelTarget(flags: TraceFlags): ModelTarget & { platform: string } {
  registerBuiltins();
  const factory = platformFactory(flags.platform);
  if (factory === undefined)
    fail(
      'ENOENT',
      `no built-in platform "${flags.platform}" (physr list shows: ${listPlatforms()
        .map((p) => p.name)
        .join(', ')})`,
      {
        field: '--platform',
      },
    );
  const create = () => factory.create({ seed: 0n, metrics: new Metrics() });
  const first = create();
  const sim = first.machine;
  if (sim === undefined)
    fail('EINVAL', `platform "${flags.platform}" has no machine model`, { field: '--platform' });
  const mode: IommuMode = flags.iommu ?? first.defaultIommuMode ?? 'strict';
  const topology = sim.model.topology;
  let device: string;
  if (flags.device !== undefined) device = resolveDevice(topology, flags.device);
  else {
    const labels = [...deviceLabels(topology)];
    const pick = labels.find(([l]) => l.startsWith('gpu')) ?? labels[0];
    if (pick === undefined) fail('ENODEV', `platform "${flags.platform}" has no endpoint to replay on`);
    device = pick[1];
  }
  return {
    platform: flags.platform,
    mode,
    device,
    machine: () => {
      const model = create().machine!.model;
      return new Machine(model, { iommu: mode !== 'off', strict: mode !== 'lazy' });
    },
  };
}

/** The command line that made a report, from what shapes it (shown under the page's title). */
export function commandLine(file: string, flags: TraceFlags): string {
  const parts = ['physr', 'trace', file];
  if (flags.kernel !== undefined) parts.push('--kernel', flags.kernel);
  if (flags.keepGoing === true) parts.push('--keep-going');
  if (!flags.model) parts.push('--no-model');
  else {
    parts.push('--platform', flags.platform);
    if (flags.iommu !== undefined) parts.push('--iommu', flags.iommu);
    if (flags.device !== undefined) parts.push('--device', flags.device);
  }
  return parts.join(' ');
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function register(program: Command): void {
  program
    .command('trace')
    .description(
      'replay a kernel DMA trace (tracefs trace/trace_pipe text or trace-cmd report): mappings, DMA-API misuse, and what physr would change',
    )
    .argument(
      '<file>',
      "the trace text (a regular file, a FIFO such as trace_pipe, or '-' for standard input)",
    )
    .option('--json', 'print the report as JSON (64-bit values as "0x…" strings)')
    .option('--html <file>', 'also write the interactive page (timelines and findings) to FILE')
    .option('--keep-going', 'report malformed lines and skip them instead of stopping at the first')
    .option(
      '--kernel <release>',
      'the traced kernel release (uname -r); decides if a missing iommu:map is unknown',
    )
    .option('--platform <name>', 'model platform for the replay (names as physr list shows)', 'x86-2s')
    .addOption(
      new Option('--iommu <mode>', "model IOMMU mode (default: the platform's kernel default)").choices([
        'strict',
        'lazy',
        'passthrough',
        'off',
      ]),
    )
    .option(
      '--device <name>',
      'model device the traced mappings are replayed on (label or BDF; default the first GPU)',
    )
    .option('--no-model', 'skip the replay through the model (findings only)')
    .option('--fail-on-findings', 'exit with status 1 when the trace shows DMA-API misuse')
    .addHelpText(
      'after',
      '\nExit status: 0 done, 1 findings with --fail-on-findings, 2 bad input (a located file:line: event: reason), 70 internal error.',
    )
    .action(async (file: string, flags: TraceFlags) => {
      if (flags.html !== undefined) checkOutputPath(flags.html, '--html');
      const fromStdin = file === '-';
      const name = fromStdin ? STDIN_NAME : file;
      if (!fromStdin) checkTraceInput(file);
      const model = flags.model ? modelTarget(flags) : undefined;
      const progress = createCountProgress({ total: fromStdin ? 0 : fileSize(file), unit: name });
      let analysis: Awaited<ReturnType<typeof analyzeTrace>>;
      try {
        analysis = await analyzeTrace(name, {
          ...(fromStdin ? { input: process.stdin } : {}),
          ...(flags.keepGoing === true ? { keepGoing: true } : {}),
          ...(flags.kernel === undefined ? {} : { kernel: flags.kernel }),
          ...(model === undefined ? {} : { model }),
          onProgress: (bytes) => progress.update(bytes),
        });
      } finally {
        progress.stop();
      }
      for (const s of analysis.skipped) process.stderr.write(`physr: skipped ${s}\n`);
      process.stdout.write(flags.json === true ? renderTraceJson(analysis) : renderTraceText(analysis));
      if (flags.html !== undefined) {
        const command = commandLine(file, flags);
        writeOutputText(flags.html, await renderTraceHtml(analysis, { command }), '--html');
      }
      if (flags.failOnFindings === true && analysis.findings.some((f) => f.severity === 'error')) {
        throw new CommanderError(EXIT_FINDINGS, 'physr.findings', 'the trace shows DMA-API misuse');
      }
    });
}

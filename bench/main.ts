/**
 * `npm run bench [-- --json] [-- --only NAME] [-- --runs N]`: runs the suite and prints a table or one
 * JSON object. Not part of the tests (test/bench/smoke.test.ts runs each benchmark once, tiny).
 */
import { parseArgs } from 'node:util';
import { createContext, type Figure } from './harness.ts';
import { suite } from './suite.ts';

/** A bad argument: one line saying what, exit 2, no stack. */
function usageError(message: string): never {
  process.stderr.write(`bench: ${message} (see npm run bench -- --help)\n`);
  process.exit(2);
}

function parseBenchArgs() {
  try {
    return parseArgs({
      options: {
        json: { type: 'boolean', default: false },
        only: { type: 'string', multiple: true },
        runs: { type: 'string' },
        smoke: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    // node:util parseArgs: unknown option, missing value, a value that looks like an option.
    const first = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    usageError(
      /ambiguous/.test(first) ? `${first.replace(/\.$/, '')}: its value may not start with '-'` : first,
    );
  }
}

const { values } = parseBenchArgs();

if (values.help) {
  process.stdout.write(
    `usage: npm run bench -- [--json] [--only NAME ...] [--runs N] [--smoke]\nbenchmarks:\n${suite
      .map((b) => `  ${b.name.padEnd(18)} ${b.description}`)
      .join('\n')}\n`,
  );
  process.exit(0);
}

const only = values.only ?? [];
const unknown = only.filter((name) => !suite.some((b) => b.name === name));
if (unknown.length > 0) {
  usageError(`unknown benchmark ${unknown.join(', ')}; known: ${suite.map((b) => b.name).join(', ')}`);
}
const runs = values.runs === undefined ? undefined : Number(values.runs);
if (runs !== undefined && !(Number.isInteger(runs) && runs > 0)) {
  usageError(`--runs ${values.runs} is not a positive integer`);
}
if ((globalThis as { gc?: unknown }).gc === undefined && !values.json) {
  process.stderr.write('bench: note: run with node --expose-gc for heap figures (npm run bench does)\n');
}

const ctx = createContext({ smoke: values.smoke, ...(runs === undefined ? {} : { runs }) });
const results: { benchmark: string; figures: Figure[] }[] = [];
for (const benchmark of suite) {
  if (only.length > 0 && !only.includes(benchmark.name)) continue;
  if (!values.json) process.stdout.write(`\n== ${benchmark.name}: ${benchmark.description}\n`);
  const figures = await benchmark.run(ctx);
  results.push({ benchmark: benchmark.name, figures });
  if (!values.json) process.stdout.write(formatTable(figures));
}

const withTargets = results.flatMap((r) => r.figures).filter((f) => f.target !== undefined);
const missed = withTargets.filter((f) => f.met === false);
if (values.json) {
  process.stdout.write(
    `${JSON.stringify({ node: process.version, runs: ctx.runs, warmup: ctx.warmup, results }, null, 2)}\n`,
  );
} else {
  process.stdout.write(
    `\ntargets: ${withTargets.length - missed.length} of ${withTargets.length} met${
      missed.length > 0 ? ` (missed: ${missed.map((f) => f.name).join(', ')})` : ''
    }\n`,
  );
}

// A missed target fails the run (smoke runs measure nothing meaningful, so they only run).
if (missed.length > 0 && !values.smoke) process.exitCode = 1;

function formatNumber(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e6) return value.toExponential(3);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

function formatTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    `${formatNumber(f.median)} ${f.unit}`,
    `${formatNumber(f.min)}..${formatNumber(f.max)}`,
    String(f.runs),
    f.target === undefined
      ? ''
      : `${f.target.op} ${formatNumber(f.target.value)} ${f.met ? 'met' : 'MISSED'}`,
    f.note ?? '',
  ]);
  const header = ['figure', 'median', 'min..max (noise)', 'runs', 'target', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/**
 * `npm run mutation:folders`: StrykerJS over the folders issue 13 names, one narrow run per folder
 * (the folder's files against that folder's tests: stryker.narrow.config.mjs), then one table of
 * every file's counts and the total score, in the Markdown the README records.
 *
 *   npm run mutation:folders                  # run every folder, then print the table
 *   npm run mutation:folders -- --report      # only print the table from the last runs' reports
 *   npm run mutation:folders -- --only dma    # one folder (names: see FOLDERS)
 *   npm run mutation:folders -- --only dma --sample 0.3   # a seeded 30 % sample of its code
 *   npm run mutation:folders -- --report --sample core=0.4,dma=0.2   # per folder (others whole)
 *   npm run mutation:folders -- --concurrency 1            # Stryker workers (default 2)
 *   npm run mutation:folders -- --only dma --force         # re-test every mutant, not only changes
 *
 * A sample mutates only windows of SAMPLE_WINDOW source lines chosen at random (seeded, so a re-run
 * picks the same windows and stays incremental): the score it gives estimates the folder's score.
 * A mutant spanning two windows (a long block removed) is left out; such mutants are almost always
 * killed, so a sampled score leans low.
 *
 * Runs are incremental (reports/, not in git), so a second run re-tests only what changed. A narrow
 * run counts a mutant that only another folder's tests would kill as a survivor: the score is a
 * lower bound on what the whole suite kills. Score = (killed + timeout) / (killed + timeout +
 * survived + no coverage), as Stryker computes it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { reportName } from '../../stryker.narrow.config.mjs';

interface Folder {
  readonly name: string;
  readonly tests: string;
  readonly mutate: string;
  /** Files mutated in full even in a sample (those issue 13 names by their mutants). */
  readonly whole?: readonly string[];
}

const FOLDERS: readonly Folder[] = [
  { name: 'core', tests: 'test/core/**/*.test.ts', mutate: 'src/core/**/*.ts' },
  {
    name: 'iommu',
    tests: 'test/iommu/**/*.test.ts',
    mutate: 'src/iommu/**/*.ts',
    whole: ['src/iommu/pgsize.ts', 'src/iommu/iova.ts'],
  },
  { name: 'p2pdma', tests: 'test/platform/p2pdma*.test.ts', mutate: 'src/platform/p2pdma.ts' },
  { name: 'dma', tests: 'test/dma/**/*.test.ts', mutate: 'src/dma/**/*.ts' },
  { name: 'rdma', tests: 'test/rdma/**/*.test.ts', mutate: 'src/rdma/**/*.ts' },
];

/** The JSON report stryker.narrow.config.mjs writes for a test glob. */
function reportPath(tests: string): string {
  return `reports/mutation/${reportName(tests)}.json`;
}

const STATUSES = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'Ignored'] as const;
type Status = (typeof STATUSES)[number];
type Counts = Record<Status, number> & { all: number };

function emptyCounts(): Counts {
  return { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, all: 0 };
}

interface ReportedMutant {
  readonly status: string;
  readonly location: { readonly start: { readonly line: number }; readonly end: { readonly line: number } };
}

interface MutationReport {
  readonly files: Record<string, { readonly mutants: readonly ReportedMutant[] }>;
}

/** Whether a sample mutates this mutant: whole files, or both its ends in one drawn window. */
type SampleFilter = (file: string, mutant: ReportedMutant) => boolean;

function sampleFilter(folder: Folder, fraction: number, seed: number): SampleFilter {
  return (file, mutant) => {
    if (folder.whole?.includes(file) === true) return true;
    const first = Math.floor((mutant.location.start.line - 1) / SAMPLE_WINDOW) * SAMPLE_WINDOW + 1;
    return mutant.location.end.line < first + SAMPLE_WINDOW && windowChosen(file, first, fraction, seed);
  };
}

/**
 * Counts per file. A run's report also carries, from the incremental file, mutants of earlier runs
 * outside this run's ranges: a sample counts only its own windows.
 */
function countsOf(report: MutationReport, keep: SampleFilter | undefined): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const c = emptyCounts();
    for (const m of mutants) {
      if (keep !== undefined && !keep(file, m)) continue;
      c.all++;
      if ((STATUSES as readonly string[]).includes(m.status)) c[m.status as Status]++;
    }
    out.set(file, c);
  }
  return out;
}

/** `detected` as a share of the scored mutants (Stryker leaves ignored and error mutants out). */
function percentOfScored(c: Counts, detected: number): string {
  const scored = c.Killed + c.Timeout + c.Survived + c.NoCoverage;
  return scored === 0 ? 'n/a' : `${((100 * detected) / scored).toFixed(2)} %`;
}

function row(label: string, tests: string, c: Counts): string {
  return `| ${label} | ${tests} | ${c.all} | ${c.Killed} | ${c.Timeout} | ${c.Survived} | ${c.NoCoverage} | ${percentOfScored(c, c.Killed + c.Timeout)} | ${percentOfScored(c, c.Killed)} |`;
}

function add(into: Counts, c: Counts): void {
  for (const k of [...STATUSES, 'all'] as const) into[k] += c[k];
}

function printTable(folders: readonly Folder[], sampleOf: SampleOf, seed: number): void {
  const lines = [
    '| file | tests run | mutants | killed | timeout | survived | no coverage | score | killed only |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const total = emptyCounts();
  const missing: string[] = [];
  for (const folder of folders) {
    const path = reportPath(folder.tests);
    if (!existsSync(path)) {
      missing.push(`${folder.name} (${path})`);
      continue;
    }
    const sample = sampleOf(folder.name);
    const keep = sample === undefined ? undefined : sampleFilter(folder, sample, seed);
    const perFile = countsOf(JSON.parse(readFileSync(path, 'utf8')) as MutationReport, keep);
    const sub = emptyCounts();
    for (const [file, c] of [...perFile].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(row(file, folder.tests.replace('/**/*.test.ts', ''), c));
      add(sub, c);
    }
    lines.push(row(`**${folder.name}**`, '', sub));
    add(total, sub);
  }
  lines.push(row('**total**', '', total));
  console.log(lines.join('\n'));
  if (missing.length > 0) console.log(`\nno report yet for: ${missing.join(', ')}`);
}

/** Lines a sampled window covers. */
const SAMPLE_WINDOW = 8;

/** The .ts files a folder's mutate pattern names (a folder glob `dir/**\/*.ts` or one file). */
function filesOf(mutate: string): string[] {
  if (!mutate.endsWith('/**/*.ts')) return [mutate];
  const walk = (dir: string): string[] =>
    readdirSync(dir)
      .sort()
      .flatMap((name) => {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) return walk(path);
        return name.endsWith('.ts') ? [path] : [];
      });
  return walk(mutate.slice(0, -'/**/*.ts'.length));
}

/**
 * A number in [0, 1) fixed by the file, the window and the seed (FNV-1a, then a 32-bit mix), so a
 * window's draw does not change when other files are added or edited: runs stay incremental.
 */
function windowDraw(file: string, first: number, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (const c of `${file}:${first}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}

/** Whether the sample takes the window starting at line `first` of `file`. */
function windowChosen(file: string, first: number, fraction: number, seed: number): boolean {
  return windowDraw(file, first, seed) < fraction;
}

/**
 * Stryker mutate ranges (`file:first-last`) for a seeded `fraction` of each file's line windows;
 * the folder's `whole` files in full.
 */
function sampledRanges(folder: Folder, fraction: number, seed: number): string[] {
  const ranges: string[] = [];
  for (const file of filesOf(folder.mutate)) {
    if (folder.whole?.includes(file) === true) {
      ranges.push(file);
      continue;
    }
    const lines = readFileSync(file, 'utf8').split('\n').length;
    for (let first = 1; first <= lines; first += SAMPLE_WINDOW) {
      if (windowChosen(file, first, fraction, seed)) {
        ranges.push(`${file}:${first}-${Math.min(lines, first + SAMPLE_WINDOW - 1)}`);
      }
    }
  }
  return ranges;
}

function numberOption(argv: readonly string[], name: string): number | undefined {
  const at = argv.indexOf(name);
  if (at < 0) return undefined;
  const value = Number(argv[at + 1]);
  if (!Number.isFinite(value)) throw new Error(`${name} needs a number, not ${argv[at + 1] ?? 'nothing'}`);
  return value;
}

/** The sample fraction of a folder, or undefined for the whole folder. */
type SampleOf = (folder: string) => number | undefined;

/**
 * `--sample F` (every folder) or `--sample core=0.4,dma=0.2` (those folders; the others whole), so
 * one command re-prints a table whose folders were sampled differently.
 */
function sampleOption(argv: readonly string[]): SampleOf {
  const at = argv.indexOf('--sample');
  if (at < 0) return () => undefined;
  const text = argv[at + 1] ?? '';
  const fractions = new Map<string, number>();
  const all = text.includes('=') ? undefined : Number(text);
  for (const part of all === undefined ? text.split(',') : []) {
    const [name, value] = part.split('=');
    if (!FOLDERS.some((f) => f.name === name))
      throw new Error(`--sample names no folder "${name}" in "${part}"`);
    fractions.set(name!, Number(value));
  }
  for (const f of all === undefined ? fractions.values() : [all]) {
    if (!(f > 0 && f <= 1)) throw new Error(`--sample ${text}: a fraction must be in (0, 1]`);
  }
  return (folder) => all ?? fractions.get(folder);
}

function main(argv: readonly string[]): number {
  let sampleOf: SampleOf;
  let seed: number;
  let concurrency: number | undefined;
  try {
    sampleOf = sampleOption(argv);
    seed = numberOption(argv, '--seed') ?? 1;
    concurrency = numberOption(argv, '--concurrency');
  } catch (error) {
    console.error(`mutation: ${(error as Error).message}`);
    return 2;
  }
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? argv[onlyAt + 1] : undefined;
  const folders = only === undefined ? FOLDERS : FOLDERS.filter((f) => f.name === only);
  if (folders.length === 0) {
    console.error(`--only needs one of: ${FOLDERS.map((f) => f.name).join(', ')}`);
    return 2;
  }
  if (!argv.includes('--report')) {
    for (const folder of folders) {
      const sample = sampleOf(folder.name);
      const mutate = sample === undefined ? folder.mutate : sampledRanges(folder, sample, seed).join(',');
      const what =
        sample === undefined
          ? folder.mutate
          : `a ${sample * 100} % sample of ${folder.mutate}${folder.whole === undefined ? '' : ` (${folder.whole.join(', ')} whole)`}`;
      console.log(`mutation: ${what} against ${folder.tests}`);
      const workers = concurrency === undefined ? [] : ['--concurrency', String(concurrency)];
      // --force re-tests every mutant, not only those whose code or tests changed (after a change
      // to the run's setup, such as its timeouts, that the incremental file cannot see).
      const force = argv.includes('--force') ? ['--force'] : [];
      const run = spawnSync(
        'npx',
        ['stryker', 'run', 'stryker.narrow.config.mjs', '--mutate', mutate, ...workers, ...force],
        {
          stdio: 'inherit',
          env: { ...process.env, PHYSR_MUTATION_TESTS: folder.tests },
        },
      );
      if (run.status !== 0) {
        console.error(`mutation: the ${folder.name} run failed (exit ${run.status ?? run.signal})`);
        return 1;
      }
    }
  }
  printTable(folders, sampleOf, seed);
  return 0;
}

process.exitCode = main(process.argv.slice(2));

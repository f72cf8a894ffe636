/**
 * `npm run mutation:folders`: StrykerJS over the folders issue 13 names, one narrow run per folder
 * (the folder's files against that folder's tests: stryker.narrow.config.mjs), then one table of
 * every file's counts and the total score, in the Markdown the README records.
 *
 *   npm run mutation:folders                  # run every folder, then print the table
 *   npm run mutation:folders -- --report      # only print the table from the last runs' reports
 *   npm run mutation:folders -- --only dma    # one folder (names: see FOLDERS)
 *
 * Runs are incremental (reports/, not in git), so a second run re-tests only what changed. A narrow
 * run counts a mutant that only another folder's tests would kill as a survivor: the score is a
 * lower bound on what the whole suite kills. Score = (killed + timeout) / (killed + timeout +
 * survived + no coverage), as Stryker computes it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

interface Folder {
  readonly name: string;
  readonly tests: string;
  readonly mutate: string;
}

const FOLDERS: readonly Folder[] = [
  { name: 'core', tests: 'test/core/**/*.test.ts', mutate: 'src/core/**/*.ts' },
  { name: 'iommu', tests: 'test/iommu/**/*.test.ts', mutate: 'src/iommu/**/*.ts' },
  { name: 'p2pdma', tests: 'test/platform/p2pdma*.test.ts', mutate: 'src/platform/p2pdma.ts' },
  { name: 'dma', tests: 'test/dma/**/*.test.ts', mutate: 'src/dma/**/*.ts' },
  { name: 'rdma', tests: 'test/rdma/**/*.test.ts', mutate: 'src/rdma/**/*.ts' },
];

/** The report file stryker.narrow.config.mjs names for a test glob. */
function reportPath(tests: string): string {
  const name = tests
    .replace(/\*\*\/\*\.test\.ts/g, '')
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `reports/mutation/${name}.json`;
}

const STATUSES = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'Ignored'] as const;
type Status = (typeof STATUSES)[number];
type Counts = Record<Status, number> & { all: number };

function emptyCounts(): Counts {
  return { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, all: 0 };
}

interface MutationReport {
  readonly files: Record<string, { readonly mutants: readonly { readonly status: string }[] }>;
}

function countsOf(report: MutationReport): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const c = emptyCounts();
    for (const m of mutants) {
      c.all++;
      if ((STATUSES as readonly string[]).includes(m.status)) c[m.status as Status]++;
    }
    out.set(file, c);
  }
  return out;
}

function score(c: Counts): string {
  // Stryker leaves ignored, compile-error and runtime-error mutants out of the score.
  const valid = c.Killed + c.Timeout + c.Survived + c.NoCoverage;
  return valid === 0 ? 'n/a' : `${((100 * (c.Killed + c.Timeout)) / valid).toFixed(2)} %`;
}

function row(label: string, tests: string, c: Counts): string {
  return `| ${label} | ${tests} | ${c.all} | ${c.Killed} | ${c.Timeout} | ${c.Survived} | ${c.NoCoverage} | ${score(c)} |`;
}

function add(into: Counts, c: Counts): void {
  for (const k of [...STATUSES, 'all'] as const) into[k] += c[k];
}

function printTable(folders: readonly Folder[]): void {
  const lines = [
    '| file | tests run | mutants | killed | timeout | survived | no coverage | score |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const total = emptyCounts();
  const missing: string[] = [];
  for (const folder of folders) {
    const path = reportPath(folder.tests);
    if (!existsSync(path)) {
      missing.push(`${folder.name} (${path})`);
      continue;
    }
    const perFile = countsOf(JSON.parse(readFileSync(path, 'utf8')) as MutationReport);
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

function main(argv: readonly string[]): number {
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? argv[onlyAt + 1] : undefined;
  const folders = only === undefined ? FOLDERS : FOLDERS.filter((f) => f.name === only);
  if (folders.length === 0) {
    console.error(`--only needs one of: ${FOLDERS.map((f) => f.name).join(', ')}`);
    return 2;
  }
  if (!argv.includes('--report')) {
    for (const folder of folders) {
      console.log(`mutation: ${folder.mutate} against ${folder.tests}`);
      const run = spawnSync(
        'npx',
        ['stryker', 'run', 'stryker.narrow.config.mjs', '--mutate', folder.mutate],
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
  printTable(folders);
  return 0;
}

process.exitCode = main(process.argv.slice(2));

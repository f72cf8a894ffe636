/**
 * Fuzzing the command line with what users feed it: the built-in scenarios and the captures in the
 * tests, mutated. Every input must end in one of two ways: a clean report (exit 0, or 1 when a
 * mutated scenario's expectation fails), or exactly one located error line with exit 2. Never a
 * stack trace, an internal error (exit 70), a hang, or memory beyond a bound.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, describe, expect } from 'vitest';
import { propertyRuns } from '../thorough.ts';
import { captureCli } from './capture.ts';

const RUNS = propertyRuns(25, 300);
/**
 * Resident memory the worker may grow by while running mutated inputs. Test files share a worker
 * (vitest isolate: false), so what others left resident is the baseline, not zero.
 */
const RSS_GROWTH_BOUND = 1.5 * 2 ** 30;
const rssBaseline = process.memoryUsage().rss;

const dir = mkdtempSync(join(tmpdir(), 'physr-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIOS = readdirSync('scenarios')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => ({ name: f, text: readFileSync(join('scenarios', f), 'utf8') }));
const FIXTURES = 'test/platform/fixtures';
const IOMEM = [
  ...readdirSync(FIXTURES)
    .filter((f) => f.startsWith('iomem-'))
    .map((f) => join(FIXTURES, f)),
  '../shared/data/captures/gpu-vm-6.18/iomem.txt',
].map((path) => ({ name: basename(path), text: readFileSync(path, 'utf8') }));
const LSPCI = ['arm', 'laptop', 'server'].map((m) => ({
  tree: readFileSync(join(FIXTURES, `lspci-${m}-tree.txt`), 'utf8'),
  verbose: readFileSync(join(FIXTURES, `lspci-${m}-verbose.txt`), 'utf8'),
}));

/** Text that has broken parsers before: YAML structure, aliases, huge or odd numbers, bytes. */
const NASTY = [
  '*a',
  '&a',
  '&a [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
  `${'['.repeat(200)}${']'.repeat(200)}`,
  `${'{a: '.repeat(80)}1${'}'.repeat(80)}`,
  '{',
  ']',
  ': :',
  '- ',
  '? ',
  '!!binary',
  '<<: *a',
  '---',
  '%YAML 1.2',
  '"\\u0000"',
  '\t',
  '~',
  'null',
  '-1',
  '0',
  '1',
  '4097',
  '0x',
  '0xffffffffffffffff',
  '0x10000000000000000',
  '18446744073709551616',
  '1e400',
  '64G',
  '1T',
  '16E',
  '999999999999999999999999',
  'size: 64G',
  'size: 1T',
  'length: 4G',
  'backing: thp',
  'via: sg',
  'pattern: random:7',
  'device: gpu9',
  'ffffffff-00000000 : x',
  '    ',
  '\u00e9\u4e2d',
];

/** Values a field may be given instead of its own: well-formed YAML, wrong or extreme meaning. */
const VALUES = [
  '0',
  '1',
  '-1',
  '4097',
  '0xffffffffffffffff',
  '0x10000000000000000',
  '64G',
  '1T',
  '2G',
  '1G',
  '4G',
  'thp',
  'hugetlb-1G',
  'hugetlb-2M',
  'sg',
  'physr',
  'aligned',
  'gpu0',
  'nic1',
  'nvme0',
  'x86-2s',
  'laptop',
  'arm-server',
  'amd-server',
  'buf',
  'b.pin',
  'm',
  'true',
  'false',
  '"random:1"',
  '"seq:255"',
  '"fill:0xff"',
  '[]',
  '{}',
  '~',
  'EINVAL',
  '{ min: 1 }',
];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('delete-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('replace' as const),
    at: fc.nat(),
    span: fc.integer({ min: 0, max: 12 }),
    with: fc.oneof(fc.constantFrom(...NASTY), fc.string({ maxLength: 8 })),
  }),
  fc.record({ kind: fc.constant('number' as const), at: fc.nat(), with: fc.constantFrom(...NASTY) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), with: fc.constantFrom(...VALUES) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), with: fc.constantFrom(...VALUES) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(text: string, m: Mutation): string {
  const lines = text.split('\n');
  const line = m.at % Math.max(lines.length, 1);
  switch (m.kind) {
    case 'delete-line':
      return lines.filter((_, i) => i !== line).join('\n');
    case 'duplicate-line':
      return [...lines.slice(0, line + 1), ...lines.slice(line)].join('\n');
    case 'truncate':
      return text.slice(0, m.at % (text.length + 1));
    case 'replace': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.with + text.slice(at + m.span);
    }
    case 'value': {
      // The value of a `key: value` field becomes another well-formed value.
      const fields = [...text.matchAll(/([\w.-]+): ([^,{}[\]\n]+)/g)];
      if (fields.length === 0) return text;
      const hit = fields[m.at % fields.length]!;
      const at = hit.index! + hit[1]!.length + 2;
      return text.slice(0, at) + m.with + text.slice(at + hit[2]!.trimEnd().length);
    }
    case 'number': {
      // A number in the text (a size, an address, a count) becomes something else.
      const numbers = [...text.matchAll(/\b(?:0x[0-9a-f]+|\d+[KMGT]?)\b/gi)];
      if (numbers.length === 0) return text + m.with;
      const hit = numbers[m.at % numbers.length]!;
      return text.slice(0, hit.index) + m.with + text.slice(hit.index! + hit[0].length);
    }
  }
}

let serial = 0;
function inputFile(name: string, text: string): string {
  const path = join(dir, `${serial++}-${name}`);
  writeFileSync(path, text);
  return path;
}

/** One of the two allowed outcomes, for an input read from `files`. */
async function expectCleanOrLocated(argv: string[], files: readonly string[], locatedByColumn: boolean) {
  const { status, stdout, stderr } = await captureCli(argv);
  expect(stderr).not.toMatch(/internal error|^\s+at /m);
  expect(process.memoryUsage().rss - rssBaseline).toBeLessThan(RSS_GROWTH_BOUND);
  if (status === 2) {
    const errors = stderr.split('\n').filter((l) => l.startsWith('physr: '));
    expect(errors).toHaveLength(1);
    const [, file, line, column] = (errors[0]!
      .slice('physr: '.length)
      .match(/^([^:]+)(?::(\d+))?(?::(\d+))?: /) ?? []) as (string | undefined)[];
    const located = files.find((f) => f === file);
    expect(located, errors[0]).toBeDefined();
    if (locatedByColumn) {
      expect(line, errors[0]).toMatch(/^\d+$/);
      expect(column, errors[0]).toMatch(/^\d+$/);
    }
    return;
  }
  expect([0, 1], stderr).toContain(status);
  expect(stdout.length).toBeGreaterThan(0);
}

describe('fuzzed inputs end in a clean report or one located error', () => {
  test.prop([fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 })], { numRuns: RUNS })(
    'a mutated built-in scenario',
    async (pick, mutations) => {
      const base = SCENARIOS[pick % SCENARIOS.length]!;
      const path = inputFile(base.name, mutations.reduce(mutate, base.text));
      await expectCleanOrLocated(['run', path], [path], true);
    },
  );

  test.prop([fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 })], { numRuns: RUNS })(
    'a mutated /proc/iomem capture',
    async (pick, mutations) => {
      const base = IOMEM[pick % IOMEM.length]!;
      const path = inputFile(base.name, mutations.reduce(mutate, base.text));
      await expectCleanOrLocated(['topo', '--builtin', 'x86-2s', '--iomem', path], [path], false);
    },
  );

  test.prop([fc.nat(), fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 3 })], { numRuns: RUNS })(
    'a mutated lspci capture pair',
    async (pick, treeSide, mutations) => {
      const base = LSPCI[pick % LSPCI.length]!;
      const tree = inputFile('tree.txt', treeSide ? mutations.reduce(mutate, base.tree) : base.tree);
      const verbose = inputFile(
        'verbose.txt',
        treeSide ? base.verbose : mutations.reduce(mutate, base.verbose),
      );
      await expectCleanOrLocated(
        ['topo', '--lspci-tree', tree, '--lspci-verbose', verbose],
        [tree, verbose],
        false,
      );
    },
  );
});

/**
 * The differential harness: a target turns a seed into one case, encodes it as one stdin line for its
 * C program (real kernel code plus the project's shims), and computes the model's answer line. The C
 * program answers one line per case. Every line is compared; the first mismatch is reported in full
 * (seed, input, both outputs) so `npm run test:kernel -- --target NAME --seed N` reproduces it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeededRandom } from '../../src/core/index.ts';
import { compareRelease, type KernelTree, packageChangelog } from './source.ts';

/** The repository folder holding the project's C drivers and shims. */
export const C_DIR = join(dirname(fileURLToPath(import.meta.url)), 'c');

/** A difference between the kernel release compiled and the release the model follows. */
export interface KnownDifference {
  /** The release that changed the rule. */
  readonly release: string;
  readonly rule: string;
  /** How the test keeps it checked (never skipped). */
  readonly checkedBy: string;
  /** Checks the tree under test is as the entry says; returns what is wrong, or undefined. */
  check?(tree: KernelTree): string | undefined;
}

export interface DiffTarget<Case> {
  readonly name: string;
  /** Kernel tree paths (files or directories) the build reads. */
  readonly files: readonly string[];
  /** Cases per run: in CI, and with PHYSR_THOROUGH=1. */
  readonly cases: { readonly ci: number; readonly thorough: number };
  readonly knownDifferences?: readonly KnownDifference[];
  /** Compiles the C program; returns its path. */
  build(tree: string, outDir: string): string;
  generate(rng: SeededRandom): Case;
  /** One line (no newline) the C program reads. */
  encode(c: Case): string;
  /** The model's answer line for the kernel release compiled (e.g. "6.12"). */
  model(c: Case, release: string): string;
  /**
   * The kernel's answer line with the words a listed known difference covers checked against the
   * compiled release's rule and replaced by what the model's line holds when its side of the rule
   * holds too (the model settles its own words the same way); a broken rule is left in the line,
   * so it shows as a mismatch. Targets without known differences in their answers leave it out.
   */
  kernelAnswer?(c: Case, line: string, release: string): string;
}

export interface Mismatch {
  readonly seed: number;
  readonly input: string;
  readonly model: string;
  readonly kernel: string;
}

export interface DiffResult {
  readonly target: string;
  readonly cases: number;
  readonly mismatches: number;
  readonly first?: Mismatch;
}

/** Seeds firstSeed, firstSeed+1, ...: case i is generated from its own seed alone. */
export function seedsFrom(firstSeed: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => firstSeed + i);
}

export function caseInput<Case>(target: DiffTarget<Case>, seed: number): { c: Case; line: string } {
  const c = target.generate(new SeededRandom(seed));
  return { c, line: target.encode(c) };
}

/** Compares the model's answers with another stream, line by line. */
export function compareAnswers(
  targetName: string,
  seeds: readonly number[],
  inputs: readonly string[],
  model: readonly string[],
  kernel: readonly string[],
): DiffResult {
  let mismatches = 0;
  let first: Mismatch | undefined;
  for (let i = 0; i < seeds.length; i++) {
    const k = kernel[i] ?? '<no answer>';
    if (model[i] === k) continue;
    mismatches++;
    first ??= { seed: seeds[i]!, input: inputs[i]!, model: model[i]!, kernel: k };
  }
  return first
    ? { target: targetName, cases: seeds.length, mismatches, first }
    : { target: targetName, cases: seeds.length, mismatches };
}

export function formatResult(result: DiffResult): string {
  const head = `${result.target}: ${result.cases} cases, ${result.mismatches} mismatches`;
  if (!result.first) return head;
  const m = result.first;
  return [
    head,
    `  first mismatch: seed ${m.seed} (reproduce: npm run test:kernel -- --target ${result.target} --seed ${m.seed})`,
    `  first difference: ${firstDifference(m.model, m.kernel)}`,
    `  input:  ${m.input}`,
    `  model:  ${m.model}`,
    `  kernel: ${m.kernel}`,
  ].join('\n');
}

/** Where two answer lines part, as the word index and both words (long answers are hard to eye). */
export function firstDifference(model: string, kernel: string): string {
  const a = model.split(' ');
  const b = kernel.split(' ');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `word ${i}: model ${a[i] ?? '<end>'}, kernel ${b[i] ?? '<end>'}`;
}

/** The model's answer line for each case (a model bug that throws propagates and stops the run). */
export function modelAnswers<Case>(
  target: DiffTarget<Case>,
  cases: readonly Case[],
  release: string,
): string[] {
  return cases.map((c) => target.model(c, release));
}

/** Runs the C program over the lines; one answer line per input line. */
export function runProgram(binary: string, lines: readonly string[]): string[] {
  const r = spawnSync(binary, [], {
    input: `${lines.join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) {
    throw new Error(`${binary} exited with ${r.status ?? r.signal}:\n${(r.stderr ?? '').slice(0, 4000)}`);
  }
  const out = r.stdout.split('\n');
  if (out[out.length - 1] === '') out.pop();
  return out;
}

/** Runs a target: the seeds' cases through the kernel program and the model, compared. */
export function runTarget<Case>(
  target: DiffTarget<Case>,
  binary: string,
  seeds: readonly number[],
  release: string,
): DiffResult {
  const generated = seeds.map((seed) => caseInput(target, seed));
  const inputs = generated.map((g) => g.line);
  const raw = runProgram(binary, inputs);
  const settle = target.kernelAnswer;
  const kernel = settle
    ? raw.map((line, i) => {
        const g = generated[i];
        return g ? settle.call(target, g.c, line, release) : line;
      })
    : raw;
  const model = modelAnswers(
    target,
    generated.map((g) => g.c),
    release,
  );
  return compareAnswers(target.name, seeds, inputs, model, kernel);
}

/**
 * The self-test: the comparator must catch a wrong answer stream. It takes the model's answers,
 * changes one number in the answer of one case, and returns what the comparator reported. The
 * changed case's seed is returned so the caller can check the report names it.
 */
export function selfTest<Case>(
  target: DiffTarget<Case>,
  seeds: readonly number[],
  release: string,
): { result: DiffResult; corruptedSeed: number } {
  const generated = seeds.map((seed) => caseInput(target, seed));
  const inputs = generated.map((g) => g.line);
  const model = modelAnswers(
    target,
    generated.map((g) => g.c),
    release,
  );
  const victim = Math.floor(seeds.length / 2);
  const wrong = [...model];
  wrong[victim] = changeOneNumber(model[victim]!);
  return { result: compareAnswers(target.name, seeds, inputs, model, wrong), corruptedSeed: seeds[victim]! };
}

/** The line with its last number increased by one (a line without digits gets one appended). */
export function changeOneNumber(line: string): string {
  const m = /(\d+)(?!.*\d)/.exec(line);
  if (!m) return `${line} 1`;
  const bumped = (BigInt(m[1]!) + 1n).toString();
  return line.slice(0, m.index) + bumped + line.slice(m.index + m[1]!.length);
}

/** gcc with the flags every target uses: warnings off (kernel code), UB sanitizer on. */
export function gcc(args: readonly string[], outDir: string, output: string): string {
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, output);
  execFileSync('gcc', ['-O1', '-g', '-w', '-fno-strict-aliasing', '-o', out, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return out;
}

/**
 * Function definitions pulled out of a kernel file by name, `static` and `inline` dropped, as the
 * kernel's own tools/testing/scatterlist harness does with sed: from the line that names the
 * function at the start of a definition to the first line that is a lone `}`. `name#2` takes the
 * second definition.
 */
export function extractFunctions(file: string, names: readonly string[]): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: string[] = [];
  for (const wanted of names) {
    // name#2: the second definition (a file may define a function once per #ifdef branch).
    const [name, nth] = wanted.split('#') as [string, string | undefined];
    let seen = 0;
    const start = lines.findIndex((line, i) => {
      if (!new RegExp(`\\b${name}\\(`).test(line) || /;\s*$/.test(line)) return false;
      // A definition: this line or the previous one begins with a type at column 0.
      const definition =
        /^[a-z_]/.test(line) || (i > 0 && /^[a-z_]/.test(lines[i - 1]!) && !/;\s*$/.test(lines[i - 1]!));
      return definition && ++seen === Number(nth ?? 1);
    });
    if (start < 0) throw new Error(`${file}: no definition of ${wanted}`);
    let begin = start;
    if (!/^[a-z_].*\b\w+\(/.test(lines[start]!) && begin > 0) begin--;
    let end = start;
    while (end < lines.length && lines[end] !== '}') end++;
    if (end === lines.length) throw new Error(`${file}: definition of ${name} does not end`);
    out.push(`#line ${begin + 1} "${file}"`);
    for (const line of lines.slice(begin, end + 1)) {
      out.push(line.replace(/^static\s+/, '').replace(/\b__always_inline\s+|\binline\s+/g, ''));
    }
  }
  return `${out.join('\n')}\n`;
}

/** Writes generated C (extracted kernel functions) into the build folder; returns its path. */
export function writeGenerated(outDir: string, name: string, text: string): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * A rule changed upstream in `release` that the model follows: the tree under test has it when it is
 * that release or newer, or when its Debian changelog lists the stable backport titled `title`.
 */
export function upstreamChange(release: string, title: string, rule: string): KnownDifference {
  return {
    release,
    rule,
    checkedBy: `the package is ${release}+ or its changelog lists the backport "${title}"`,
    check(tree) {
      if (compareRelease(tree.release, release) >= 0) return undefined;
      if (packageChangelog(tree).includes(title)) return undefined;
      return `${tree.packageName} ${tree.packageVersion} lacks "${title}", so it predates the model's rule`;
    },
  };
}

/**
 * A top-level declaration that is not a function (a static table): from the first line matching
 * `start` to the first line that begins with `};`, `static` dropped.
 */
export function extractBlock(file: string, start: RegExp): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  const begin = lines.findIndex((line) => start.test(line));
  if (begin < 0) throw new Error(`${file}: nothing matches ${start}`);
  let end = begin;
  while (end < lines.length && !lines[end]!.startsWith('};')) end++;
  if (end === lines.length) throw new Error(`${file}: the block at line ${begin + 1} does not end`);
  const body = lines.slice(begin, end + 1).map((line) => line.replace(/^static\s+/, ''));
  return `#line ${begin + 1} "${file}"\n${body.join('\n')}\n`;
}

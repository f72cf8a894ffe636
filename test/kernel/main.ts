/**
 * `npm run test:kernel`: differential tests of physr's models against the kernel's own C, compiled in
 * userspace from Debian's linux-source package (fetched with apt and cached; see source.ts).
 *
 *   npm run test:kernel                               every target, CI case counts
 *   npm run test:kernel -- --target iova --seed 123   one case of one target (a reported mismatch)
 *   npm run test:kernel -- --cases 50000 --first-seed 1000
 *   npm run test:kernel -- --newest                   the newest linux-source-X.Y apt has
 *   PHYSR_THOROUGH=1 npm run test:kernel              many more cases per target
 *
 * Before comparing, each target's self-test checks its comparator reports a deliberately wrong
 * answer with its seed. Any mismatch, or a failed self-test, exits 1.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { THOROUGH } from '../thorough.ts';
import { type DiffResult, type DiffTarget, formatResult, runTarget, seedsFrom, selfTest } from './harness.ts';
import { DEFAULT_PACKAGE, kernelCacheDir, kernelTree, newestSourcePackage } from './source.ts';
import { TARGETS } from './targets/index.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    seed: { type: 'string' },
    'first-seed': { type: 'string' },
    cases: { type: 'string' },
    newest: { type: 'boolean', default: false },
  },
});

const thorough = THOROUGH;
const log = (line: string) => console.log(line);
const names = values.target ?? TARGETS.map((t) => t.name);
const chosen: DiffTarget<unknown>[] = names.map((name) => {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) {
    console.error(`unknown target ${name}; targets: ${TARGETS.map((x) => x.name).join(', ')}`);
    process.exit(2);
  }
  return t;
});

const packageName = values.newest ? newestSourcePackage(log) : DEFAULT_PACKAGE;
const tree = kernelTree(
  TARGETS.flatMap((t) => t.files),
  { packageName, log },
);
log(`kernel: ${tree.packageName} ${tree.packageVersion} (release ${tree.release}) in ${tree.root}`);

let failed = false;
const results: DiffResult[] = [];
for (const target of chosen) {
  const count = values.seed
    ? 1
    : Number(values.cases ?? (thorough ? target.cases.thorough : target.cases.ci));
  const first = Number(values.seed ?? values['first-seed'] ?? 1);
  const seeds = seedsFrom(first, count);

  const check = selfTest(target, seedsFrom(first, Math.min(count, 50)), tree.release);
  const caught =
    check.result.mismatches === 1 &&
    check.result.first?.seed === check.corruptedSeed &&
    formatResult(check.result).includes(`--seed ${check.corruptedSeed}`);
  if (!caught) {
    failed = true;
    log(`${target.name}: SELF-TEST FAILED: a changed answer was not reported with its seed`);
    log(formatResult(check.result));
  }

  for (const k of target.knownDifferences ?? []) {
    const wrong = k.check?.(tree);
    log(
      `${target.name}: known difference (${k.release}): ${k.rule}; checked by ${k.checkedBy}: ${wrong ?? 'holds'}`,
    );
    if (wrong) failed = true;
  }
  const binary = target.build(tree.root, join(kernelCacheDir(), 'build', `${tree.release}`, target.name));
  const started = Date.now();
  const result = runTarget(target, binary, seeds, tree.release);
  results.push(result);
  log(`${formatResult(result)} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (result.mismatches > 0) failed = true;
}

const cases = results.reduce((a, r) => a + r.cases, 0);
const mismatches = results.reduce((a, r) => a + r.mismatches, 0);
log(`Kernel: ${cases - mismatches} passed, ${mismatches} failed`);
process.exit(failed ? 1 : 0);

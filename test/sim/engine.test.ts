import { fc, test } from '@fast-check/vitest';
import { afterEach, beforeEach, describe, expect } from 'vitest';
import { fail } from '../../src/core/index.ts';
import {
  firstMismatch,
  parsePattern,
  parseScenario,
  patternBytes,
  registerCoreSteps,
  registerStep,
  runScenario,
  type StepExecutor,
  type StepKind,
  stepExecutor,
  unregisterStep,
} from '../../src/sim/index.ts';

registerCoreSteps();

const HEAD = 'name: demo\nplatform: core-only\nsteps:\n';

describe('engine', () => {
  // The registry is global and other test files in this worker may have filled it: take these kinds
  // out for each test and put back what was there.
  const borrowed = ['cpu-read', 'cpu-write', 'reset'] as const;
  const saved = new Map<StepKind, StepExecutor<StepKind>>();
  beforeEach(() => {
    for (const kind of borrowed) {
      const executor = stepExecutor(kind);
      if (executor !== undefined) saved.set(kind, executor);
      unregisterStep(kind);
    }
  });
  afterEach(() => {
    for (const kind of borrowed) {
      unregisterStep(kind);
      const executor = saved.get(kind);
      if (executor !== undefined) registerStep(kind, executor);
    }
    saved.clear();
  });

  test('a broken expectation fails the scenario with the step, op and reason; later steps still run', async () => {
    registerStep('cpu-read', (body) => ({
      observed: {
        bytes: patternBytes(parsePattern('seq'), body.offset, Number(body.length)),
        offset: body.offset,
      },
    }));
    const scenario = parseScenario(
      `${HEAD}  - cpu-read: { buffer: b, length: 16, expect: { bytes: seq } }\n` +
        `  - cpu-read: { buffer: b, offset: 8, length: 16, expect: { bytes: "fill:0" } }\n` +
        `  - build-list: { name: l, ranges: [ { addr: 0x1000, len: 4K } ] }\n`,
      'broken.yaml',
    );
    const report = await runScenario(scenario);
    expect(report.status).toBe('failed');
    expect(report.failure).toEqual({
      step: 1,
      op: 'cpu-read',
      line: 5,
      reason: 'expected bytes = fill:0x00: byte at offset 0x8 is 0x08',
    });
    expect(report.steps.map((s) => s.status)).toEqual(['ok', 'failed', 'ok']);
  });

  test('a refusal is an error (later steps skipped) unless expect.error names its errno', async () => {
    registerStep('cpu-write', () => fail('EFAULT', 'no such buffer'));
    const expected = await runScenario(
      parseScenario(
        `${HEAD}  - cpu-write: { buffer: b, length: 4, pattern: seq, expect: { error: EFAULT } }\n`,
        'a.yaml',
      ),
    );
    expect(expected.status).toBe('passed');
    const wrong = await runScenario(
      parseScenario(
        `${HEAD}  - cpu-write: { buffer: b, length: 4, pattern: seq, expect: { error: EINVAL } }\n`,
        'b.yaml',
      ),
    );
    expect(wrong.status).toBe('failed');
    expect(wrong.failure?.reason).toMatch(/refused with EINVAL: EFAULT: no such buffer/);
    const unexpected = await runScenario(
      parseScenario(
        `${HEAD}  - cpu-write: { buffer: b, length: 4, pattern: seq }\n  - build-list: { name: l, ranges: [ { addr: 0, len: 1 } ] }\n`,
        'c.yaml',
      ),
    );
    expect(unexpected.status).toBe('error');
    expect(unexpected.steps.map((s) => s.status)).toEqual(['error', 'skipped']);
    expect(unexpected.steps[0]!.error).toEqual({ errno: 'EFAULT', reason: 'no such buffer' });
  });

  test('a step without an executor is ENOTSUPP, an unexpected fault fails', async () => {
    const missing = await runScenario(parseScenario(`${HEAD}  - reset: { device: gpu0 }\n`, 'r.yaml'));
    expect(missing.steps[0]!.error?.errno).toBe('ENOTSUPP');
    registerStep('cpu-read', () => ({ observed: { fault: 'IOMMU fault at iova 0x1000' } }));
    const faulted = await runScenario(
      parseScenario(`${HEAD}  - cpu-read: { buffer: b, length: 4 }\n`, 'f.yaml'),
    );
    expect(faulted.failure?.reason).toBe('expected no fault: unexpected fault: IOMMU fault at iova 0x1000');
    const wanted = await runScenario(
      parseScenario(`${HEAD}  - cpu-read: { buffer: b, length: 4, expect: { fault: true } }\n`, 'g.yaml'),
    );
    expect(wanted.status).toBe('passed');
  });

  test('metrics per step and per scenario, and the comparison split by path', async () => {
    const report = await runScenario(
      parseScenario(
        `${HEAD}  - build-list: { name: l, ranges: [ { addr: 0x1000, len: 4K }, { addr: 0x3000, len: 4K } ] }\n` +
          `  - compare-metadata: { list: l, expect: { counters: { core.sg_entries: 2, core.sg_metadata_bytes: { min: 80, max: 80 } } } }\n` +
          `  - expect-counters: { counters: { core.physr_ranges: 2, core.sg_entries: { max: 1 } } }\n`,
        'm.yaml',
      ),
    );
    expect(report.steps[0]!.metrics).toEqual({ 'core.physr_metadata_bytes': 32, 'core.physr_ranges': 2 });
    expect(report.metrics['core.sg_metadata_bytes']).toBe(80);
    // No scratch in a core-only build: peak and retained agree.
    expect(report.comparison.slice(0, 2)).toEqual([
      { metric: 'metadata at peak', unit: 'bytes', physr: 32, sg: 80, kind: 'cost' },
      { metric: 'metadata retained', unit: 'bytes', physr: 32, sg: 80, kind: 'cost' },
    ]);
    expect(report.steps[1]!.status).toBe('ok');
    expect(report.failure).toEqual({
      step: 2,
      op: 'expect-counters',
      line: 6,
      reason: 'expected core.sg_entries <= 1: core.sg_entries = 2',
    });
  });

  test('an unknown platform is one located error', async () => {
    const s = parseScenario('name: d\nplatform: cray-1\nsteps:\n  - flush: {}\n', 'p.yaml');
    await expect(runScenario(s)).rejects.toMatchObject({
      errno: 'ENOENT',
      location: { file: 'p.yaml', line: 2, column: 11, field: 'platform' },
    });
  });
});

describe('patterns', () => {
  const pattern = fc.oneof(
    fc.integer({ min: 0, max: 255 }).map((v) => `fill:${v}`),
    fc.integer({ min: 0, max: 1000 }).map((v) => `seq:${v}`),
    fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((v) => `random:${v}`),
  );

  test.prop([
    pattern,
    fc.bigInt({ min: 0n, max: (1n << 64n) - 4096n }),
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 0, max: 63 }),
  ])('a sub-range read matches the same pattern; a flipped byte is found', (text, offset, length, flip) => {
    const p = parsePattern(text);
    const whole = patternBytes(p, offset, length + 64);
    const at = flip % length;
    const part = whole.slice(at, at + length);
    expect(firstMismatch(p, offset + BigInt(at), part)).toBe(-1);
    part[0] = part[0]! ^ 0x01;
    expect(firstMismatch(p, offset + BigInt(at), part)).toBe(0);
  });
});

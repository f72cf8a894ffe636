import { describe, expect, test } from 'vitest';
import { isScenarioError, parseScenario, type ScenarioError } from '../../src/sim/index.ts';

/** Parses text that must fail; returns the one error. */
function refusal(text: string): ScenarioError {
  try {
    parseScenario(text, 'user.yaml');
  } catch (error) {
    if (isScenarioError(error)) return error;
    throw error;
  }
  throw new Error('scenario was accepted');
}

const HEAD = 'name: demo\nplatform: core-only\nsteps:\n';

describe('malformed scenarios give one located error', () => {
  test.each([
    [
      'wrong type',
      `${HEAD}  - allocate:\n      name: buf\n      size: 2M\n      fragmented: yes please\n`,
      7,
      19,
      'steps[0].allocate.fragmented',
      /expected true\/false, got text$/,
    ],
    [
      'a scalar where the step fields belong',
      `${HEAD}  - allocate: 5\n`,
      4,
      15,
      'steps[0].allocate',
      /expected a map of fields, got a number$/,
    ],
    [
      'unknown step',
      `${HEAD}  - allocate: { name: buf, size: 2M }\n  - mapp: { name: m }\n`,
      5,
      5,
      'steps[1].mapp',
      /unknown step "mapp"/,
    ],
    [
      'bad size string',
      `${HEAD}  - allocate: { name: buf, size: 2Q }\n`,
      4,
      34,
      'steps[0].allocate.size',
      /"2Q" is not a size/,
    ],
    [
      'missing platform',
      'name: demo\nsteps:\n  - allocate: { name: buf, size: 2M }\n',
      1,
      1,
      'platform',
      /missing field "platform"/,
    ],
    [
      'YAML syntax error',
      `${HEAD}  - allocate: { name: buf, size: 2M\n  - map: {}\n`,
      5,
      3,
      undefined,
      /^YAML: /,
    ],
    [
      'bigint out of range',
      'name: demo\nplatform: core-only\nseed: 0x1ffffffffffffffff\nsteps:\n  - allocate: { name: b, size: 4K }\n',
      3,
      7,
      'seed',
      /outside 0..2\^64-1/,
    ],
    [
      'seed that is not a number',
      'name: demo\nplatform: core-only\nseed: abc\nsteps:\n  - allocate: { name: b, size: 4K }\n',
      3,
      7,
      'seed',
      /seed "abc" is not an integer/,
    ],
    [
      'counter name that is not piece.name',
      `${HEAD}  - expect-counters: { counters: { "Bad Name": 1 } }\n`,
      4,
      48,
      'steps[0].expect-counters.counters.Bad Name',
      /a counter name is piece.name/,
    ],
    [
      'address out of range',
      `${HEAD}  - build-list: { name: l, ranges: [ { addr: 0x10000000000000000, len: 4K } ] }\n`,
      4,
      46,
      'steps[0].build-list.ranges[0].addr',
      /outside/,
    ],
    [
      'typo in a field',
      `${HEAD}  - allocate: { name: buf, sise: 2M }\n`,
      4,
      28,
      'steps[0].allocate.sise',
      /unknown field "sise" \(known: name, size/,
    ],
    [
      'unknown top-level field',
      'name: demo\nplatfrom: x\nplatform: core-only\nsteps: []\n',
      2,
      1,
      'platfrom',
      /unknown field "platfrom"/,
    ],
    [
      'two kinds in one step',
      `${HEAD}  - allocate: { name: buf, size: 2M }\n    map: {}\n`,
      5,
      5,
      'steps[0].map',
      /exactly one kind/,
    ],
    [
      'bad pattern',
      `${HEAD}  - cpu-write: { buffer: b, length: 4K, pattern: stripes }\n`,
      4,
      50,
      'steps[0].cpu-write.pattern',
      /pattern "stripes"/,
    ],
  ])('%s', (_what, text, line, column, field, reason) => {
    const error = refusal(text);
    expect(error.errno).toBe('EINVAL');
    expect(error.location).toMatchObject({ file: 'user.yaml', line, column });
    expect(error.location?.field).toBe(field);
    expect(error.reason).toMatch(reason);
    expect(error.reason).not.toContain('\n');
    // The caret sits under the reported column of the reported line.
    const [source, caret] = error.excerpt.split('\n');
    expect(source).toContain(`${line} | `);
    expect(caret!.indexOf('^') - caret!.indexOf('|') - 2).toBe(column - 1);
  });

  test('64-bit values stay exact', () => {
    const s = parseScenario(
      `name: d\nplatform: core-only\nseed: 0xffffffffffffffff\nsteps:\n  - build-list: { name: l, ranges: [ { addr: 0xfffffffffffff000, len: 4K } ] }\n`,
      'ok.yaml',
    );
    expect(s.seed).toBe(0xffff_ffff_ffff_ffffn);
    const step = s.steps[0]!;
    expect(step.kind === 'build-list' && step.body.ranges[0]!.addr).toBe(0xffff_ffff_ffff_f000n);
  });

  test('expect may sit inside the step or beside its kind, not both', () => {
    const inside = parseScenario(
      `${HEAD}  - cpu-read: { buffer: b, length: 4K, expect: { bytes: seq } }\n`,
      'a.yaml',
    );
    const beside = parseScenario(
      `${HEAD}  - cpu-read: { buffer: b, length: 4K }\n    expect: { bytes: seq }\n`,
      'b.yaml',
    );
    expect(inside.steps[0]!.body).toEqual(beside.steps[0]!.body);
    expect(beside.steps[0]!.line).toBe(4);
    const both = refusal(
      `${HEAD}  - cpu-read: { buffer: b, length: 4K, expect: {} }\n    expect: { bytes: seq }\n`,
    );
    expect(both.reason).toMatch(/expect is given twice/);
  });
});

describe('YAML that would exhaust the parser or memory is one located error', () => {
  test.each([
    ['an unresolved alias', `${HEAD}  - allocate: *buf\n`, 4, 15, /alias \*buf has no anchor &buf before it/],
    [
      'an alias used before its anchor',
      `${HEAD}  - allocate: *a\n  - allocate: &a { name: b, size: 4K }\n`,
      4,
      15,
      /alias \*a has no anchor/,
    ],
    [
      'an alias inside the node it names (a cycle)',
      `${HEAD}  - &s { allocate: *s }\n`,
      4,
      20,
      /alias \*s lies inside the node it names/,
    ],
    [
      'an alias bomb',
      `${HEAD}a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n`,
      5,
      8,
      /aliases expand the document too much \(more than 100 copies\)/,
    ],
    [
      'flow lists nested 65 deep',
      `${HEAD}  - ${'['.repeat(65)}${']'.repeat(65)}\n`,
      4,
      // The top map is level 0 and steps level 1: the 63rd "[" is the collection at level 64.
      67,
      /nested more than 64 levels deep/,
    ],
    [
      'block maps nested 65 deep',
      `${HEAD}${Array.from({ length: 65 }, (_, i) => `${' '.repeat(2 + i)}k${i}:\n`).join('')}`,
      67,
      66,
      /nested more than 64 levels deep/,
    ],
    [
      'flow lists nested deeper than the parser can recurse',
      `${HEAD}  - ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`,
      4,
      undefined,
      /nested too deeply to parse \(at most 64 levels\)/,
    ],
  ])('%s', (_what, text, line, column, reason) => {
    const error = refusal(text);
    expect(error.errno).toBe('EINVAL');
    expect(error.location).toMatchObject({ file: 'user.yaml', line });
    if (column !== undefined) expect(error.location?.column).toBe(column);
    expect(error.reason).toMatch(reason);
  });

  test('an alias to an earlier anchor still works', () => {
    const s = parseScenario(
      `${HEAD}  - allocate: &spec { name: a, size: 4K }\n  - cpu-write: { buffer: a, length: 4K, pattern: seq }\n  - allocate: *spec\n`,
      'ok.yaml',
    );
    expect(s.steps[2]!.body).toEqual(s.steps[0]!.body);
  });
});

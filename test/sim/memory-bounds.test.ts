import { describe, expect, test } from 'vitest';
import { parseScenario, registerBuiltins, runScenario } from '../../src/sim/index.ts';

registerBuiltins();

async function run(steps: string) {
  return runScenario(parseScenario(`name: big\nplatform: x86-2s\nsteps:\n${steps}`, 'big.yaml'));
}

describe('requests beyond what the model holds fail at once', () => {
  test('1T on x86-2s is ENOMEM naming the platform and its RAM', async () => {
    const report = await run('  - allocate: { name: b, size: 1T, backing: thp }\n');
    expect(report.steps[0]!.error?.errno).toBe('ENOMEM');
    expect(report.steps[0]!.error?.reason).toMatch(
      /^1T does not fit in the RAM of platform two-socket-server: \d+\.\d GiB, of which \d+\.\d GiB free$/,
    );
  });

  test('64G of THP allocates and pins; scattered pages beyond 1G are E2BIG naming the reason', async () => {
    const thp = await run(
      '  - allocate: { name: b, size: 64G, backing: thp }\n  - pin: { buffer: b, via: physr }\n',
    );
    expect(thp.status).toBe('passed');
    expect(thp.steps[1]!.notes.join('\n')).toMatch(/16777216 pages as \d+ ranges/);
    const scattered = await run('  - allocate: { name: b, size: 2G, fragmented: true }\n');
    expect(scattered.steps[0]!.error?.errno).toBe('E2BIG');
    expect(scattered.steps[0]!.error?.reason).toMatch(
      /^2G of scattered pages is 524288 pages; physr models at most 262144 \(1G\) scattered pages a buffer, each its own folio, extent and range/,
    );
  });

  test('a 4G pattern is written as a description and read back byte-exact around an overwrite', async () => {
    const report = await run(
      [
        '  - allocate: { name: b, size: 4G, backing: thp }',
        '  - cpu-write: { buffer: b, length: 4G, pattern: random:3 }',
        '  - cpu-write: { buffer: b, offset: 0x12345, length: 100, pattern: seq }',
        '  - check: { buffer: b, offset: 0x12000, length: 0x345, pattern: random:3 }',
        '  - check: { buffer: b, offset: 0x12345, length: 100, pattern: seq }',
        '  - check: { buffer: b, offset: 0x123a9, length: 0x1000, pattern: random:3 }',
        '  - check: { buffer: b, offset: 0xfff00000, length: 1M, pattern: random:3 }',
        '',
      ].join('\n'),
    );
    expect(report.status).toBe('passed');
  });
});

describe('steps that hold real bytes are bounded; check is not', () => {
  test('a 4G dma-write or cpu-read is E2BIG before moving a byte', async () => {
    const report = await run(
      [
        '  - allocate: { name: b, size: 4G, backing: thp }',
        '  - map: { name: m, buffer: b, device: nvme0, via: physr }',
        '  - dma-write: { device: nvme0, buffer: m, length: 4G, pattern: seq }',
        '    expect: { error: E2BIG }',
        '  - cpu-read: { buffer: b, length: 257M }',
        '    expect: { error: E2BIG }',
        '  - cpu-read: { buffer: b, length: 256M }',
        '',
      ].join('\n'),
    );
    expect(report.status).toBe('passed');
  });

  test('check compares block by block and names the first differing byte past the first block', async () => {
    const report = await run(
      [
        '  - allocate: { name: b, size: 8M, backing: thp }',
        '  - cpu-write: { buffer: b, length: 8M, pattern: seq }',
        '  - cpu-write: { buffer: b, offset: 0x345678, length: 1, pattern: "fill:0xee" }',
        '  - check: { buffer: b, length: 8M, pattern: seq }',
        '',
      ].join('\n'),
    );
    expect(report.status).toBe('failed');
    expect(report.failure?.reason).toBe('expected bytes = seq: byte at offset 0x345678 is 0xee');
  });
});

/**
 * Every built-in scenario passes through the engine (one test each, so a failure names it); a broken
 * expectation after a real DMA fails the run and names the step; `physr run` exits non-zero on it;
 * malformed files with the new step fields give one located error.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { observeDesignRuns } from '../../src/sim/designs.ts';
import {
  builtinScenarioNames,
  isScenarioError,
  listPlatforms,
  loadScenarioFile,
  parseScenario,
  registerBuiltins,
  renderRunText,
  resolveScenarioTarget,
  runScenario,
  runSuite,
} from '../../src/sim/index.ts';
import { expectSameBytesSamePlaces } from './design-bytes.ts';
import { expectSgWithinKernel } from './kernel-sg-bytes.ts';

registerBuiltins();

describe('built-in scenarios', () => {
  for (const name of builtinScenarioNames()) {
    it(`${name} passes, and its designs move the same bytes to the same places`, async () => {
      let compared = 0;
      // Every buffer map also runs under sg, linux-7.1 and physr (designs.ts): check each set live.
      const previous = observeDesignRuns((input, runs) => {
        expectSameBytesSamePlaces(input, runs);
        compared++;
      });
      try {
        const report = await runScenario(loadScenarioFile(resolveScenarioTarget(name)));
        expect(report.failure).toBeUndefined();
        expect(report.status).toBe('passed');
        // Its scatterlist metadata is never more than the kernel allocates for each operation.
        expectSgWithinKernel(report);
        // Every step that maps (a DMA map, an MR's umem, a dma-buf import) was checked; a pin maps nothing.
        const maps = report.steps.filter((s) => s.designRuns !== undefined && s.op !== 'pin');
        expect(compared).toBe(maps.length);
      } finally {
        observeDesignRuns(previous);
      }
    }, 30_000);
  }
});

describe('platforms', () => {
  it('lists the built-ins with their device labels', () => {
    const names = listPlatforms().map((p) => p.name);
    for (const n of ['x86-2s', 'laptop', 'arm-server', 'amd-server']) expect(names).toContain(n);
    const x86 = listPlatforms().find((p) => p.name === 'x86-2s')!;
    expect(x86.description).toContain('gpu0=03:00.0');
    expect(x86.description).toContain('nic1=81:00.0');
    expect(x86.description).toContain('nvme0=06:00.0');
  });

  it('a built-in booted with a bad kernel command line is one located error at platform.cmdline', async () => {
    const s = parseScenario(
      'name: d\nplatform: { builtin: x86-2s, cmdline: "pci=disable_acs_redir=02:00.0;" }\nsteps:\n  - flush: {}\n',
      'p.yaml',
    );
    await expect(runScenario(s)).rejects.toMatchObject({
      errno: 'EINVAL',
      reason: 'disable_acs_redir: "02:00.0;" ends with a separator',
      location: { file: 'p.yaml', line: 2, field: 'platform.cmdline' },
    });
  });

  it('the report names the platform with the command line it booted with, and the switch then routes P2P', async () => {
    const body =
      'steps:\n  - export: { name: v, device: gpu0, bar: 1, length: 2M }\n  - map: { name: m, buffer: v, device: nic0, via: physr, direction: from-device }\n';
    const booted = await runScenario(
      parseScenario(
        `name: d\nplatform: { builtin: x86-2s, cmdline: "pci=disable_acs_redir=0000:02:00.0;0000:02:01.0" }\n${body}`,
        'p.yaml',
      ),
    );
    expect(booted.platform).toBe('x86-2s pci=disable_acs_redir=0000:02:00.0;0000:02:01.0');
    expect(booted.metrics['sim.segments_bus_address']).toBe(1);
    const plain = await runScenario(parseScenario(`name: d\nplatform: x86-2s\n${body}`, 'p.yaml'));
    expect(plain.metrics['sim.segments_bus_address'] ?? 0).toBe(0);
    expect(plain.metrics['sim.segments_through_host_bridge']).toBe(1);
  });
});

const BROKEN = `name: broken-bytes
platform: x86-2s
steps:
  - allocate: { name: buf, size: 16K }
  - map: { name: m, buffer: buf, device: nvme0, via: physr, direction: from-device }
  - dma-write: { device: nvme0, buffer: m, length: 16K, pattern: seq }
  - check: { buffer: buf, length: 16K, pattern: seq:1 }
`;

describe('a broken expectation', () => {
  it('fails the scenario and says which step and why', async () => {
    const report = await runScenario(parseScenario(BROKEN, '/tmp/broken.yaml'));
    expect(report.status).toBe('failed');
    expect(report.failure).toMatchObject({ step: 3, op: 'check', line: 7 });
    expect(report.failure!.reason).toMatch(/bytes = seq:1: byte at offset 0x0 is 0x00/);
  });

  it('makes physr run exit non-zero', () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-sim-'));
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, BROKEN);
    let status = 0;
    let out = '';
    try {
      // The installed command as a user runs it (the dist/ build npm ci made; rebuilt if src/ is newer).
      execFileSync(process.execPath, ['bin/physr.js', 'run', file], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      const e = error as { status: number; stdout: string };
      status = e.status;
      out = e.stdout;
    }
    expect(status).toBe(1);
    expect(out).toContain('failed at step 4 (check, line 7)');
  }, 60_000);

  it('an unexpected fault fails the step, an expected one passes', async () => {
    const text = `name: fault
platform: x86-2s
iommu: { mode: strict }
steps:
  - allocate: { name: buf, size: 4K }
  - map: { name: m, buffer: buf, device: nic0 }
  - unmap: { mapping: m }
  - dma-write: { device: nic0, buffer: m, length: 4K, pattern: seq }
`;
    const report = await runScenario(parseScenario(text, '/tmp/fault.yaml'));
    expect(report.status).toBe('failed');
    expect(report.failure!.reason).toMatch(/unexpected fault/);
    const ok = await runScenario(parseScenario(`${text}    expect: { fault: true }\n`, '/tmp/fault.yaml'));
    expect(ok.status).toBe('passed');
  });

  it('an unknown device label is a step error naming the labels', async () => {
    const report = await runScenario(
      parseScenario(
        `name: nodev\nplatform: laptop\nsteps:\n  - probe: { device: gpu7 }\n`,
        '/tmp/nodev.yaml',
      ),
    );
    expect(report.status).toBe('error');
    expect(report.failure!.reason).toMatch(/ENODEV: "gpu7" is neither a PCI address .*labels: gpu0=00:02.0/);
  });
});

describe('malformed new fields', () => {
  const cases: [string, string, RegExp][] = [
    ['probe mask', '  - probe: { device: nvme0, dmaMask: 65 }', /line 4.*dmaMask.*1\.\.64/s],
    ['sync for', '  - sync: { mapping: m, for: gpu }', /line 4.*for/s],
    ['register-mr size', '  - register-mr: { name: r, buffer: b, device: nic0, iova: zz }', /line 4.*iova/s],
  ];
  for (const [what, step, message] of cases) {
    it(what, () => {
      let error: unknown;
      try {
        parseScenario(`name: bad\nplatform: x86-2s\nsteps:\n${step}\n`, '/tmp/bad.yaml');
      } catch (e) {
        error = e;
      }
      expect(isScenarioError(error)).toBe(true);
      const loc = (error as { location?: { line?: number; field?: string } }).location;
      expect(`line ${loc?.line} ${loc?.field} ${(error as { reason: string }).reason}`).toMatch(message);
    });
  }
});

describe('a fair comparison', () => {
  it('device probing is charged to no step: the design that runs first pays no extra table pages', async () => {
    const report = await runScenario(
      parseScenario(
        'name: fair\nplatform: x86-2s\niommu: { mode: strict }\nsteps:\n' +
          '  - allocate: { name: a, size: 64K }\n' +
          '  - map: { name: m, buffer: a, device: nvme0, via: physr }\n' +
          '  - unmap: { mapping: m }\n' +
          '  - allocate: { name: b, size: 64K }\n' +
          '  - map: { name: s, buffer: b, device: nvme0, via: sg }\n' +
          '  - unmap: { mapping: s }\n',
        'fair.yaml',
      ),
    );
    expect(report.status).toBe('passed');
    expect(report.designs).toEqual(['physr', 'sg']);
    const row = (metric: string) => report.comparison.find((r) => r.metric === metric)!;
    // The first map builds the table pages; its unmap covers none of them whole, so they stay
    // (generic_pt iommu_pt.h __unmap_range frees only covered tables) and the second design finds
    // them: it pays no table pages and no table-entry writes, and the same leaf writes.
    // VT-d 4-level: the top table exists from domain creation; a 64K map below 4 GiB adds one
    // table at each of levels 3, 2 and 1.
    expect(row('table pages').physr).toBe(3);
    expect(row('table pages').sg).toBe(0);
    expect(row('PTE writes').physr).toBe(row('PTE writes').sg + row('table pages').physr);
    expect(row('IOVA allocations')).toMatchObject({ physr: 1, sg: 1 });
  });

  it("a DMA through a mapping counts for the mapping's design: the strict-mode fault shows in the table", async () => {
    const report = await runScenario(loadScenarioFile(resolveScenarioTarget('iotlb-strict')));
    const faults = report.comparison.find((r) => r.metric === 'faults')!;
    expect(faults).toMatchObject({ physr: 1, sg: 0 });
    expect(report.steps.filter((s) => s.op === 'dma-write').every((s) => s.path === 'physr')).toBe(true);
  });

  it('layout: aligned is a physr choice: asking it of the legacy sg path is a located step error', async () => {
    const report = await runScenario(
      parseScenario(
        'name: l\nplatform: x86-2s\nsteps:\n  - allocate: { name: a, size: 64K }\n' +
          '  - map: { name: m, buffer: a, device: nvme0, via: sg, layout: aligned }\n',
        'l.yaml',
      ),
    );
    expect(report.status).toBe('error');
    expect(report.failure).toMatchObject({ step: 1, op: 'map', line: 5 });
    expect(report.failure!.reason).toMatch(/EINVAL: layout: aligned is a physr IOVA layout/);
  });

  it('the suite total sums only the scenarios that ran both designs', async () => {
    const both = parseScenario(
      'name: both\nplatform: core-only\nsteps:\n' +
        '  - build-list: { name: l, ranges: [ { addr: 0x1000, len: 4K } ] }\n' +
        '  - compare-metadata: { list: l }\n',
      'both.yaml',
    );
    const physrOnly = parseScenario(
      'name: one\nplatform: core-only\nsteps:\n  - build-list: { name: l, ranges: [ { addr: 0x1000, len: 8K } ] }\n',
      'one.yaml',
    );
    const run = await runSuite([both, physrOnly]);
    expect(run.scenarios.map((s) => s.designs)).toEqual([['physr', 'sg'], ['physr']]);
    expect(run.comparedScenarios).toEqual(['both']);
    expect(run.comparison).toEqual(run.scenarios[0]!.comparison);
    const text = renderRunText(run);
    expect(text).toContain('costs (only the physr design runs here)');
    expect(text).toContain('physr vs scatterlist over the 1 scenario that ran both designs (both)');
  });
});

describe('step notes read as English', () => {
  it('counts of one are singular ("1 range → 1 DMA range", "1 dma-buf revoked")', async () => {
    const strict = await runScenario(loadScenarioFile(resolveScenarioTarget('iotlb-strict')));
    const notes = strict.steps.flatMap((s) => s.notes);
    expect(notes.some((n) => n.includes(': 1 range → 1 DMA range via IOMMU (one IOVA);'))).toBe(true);
    expect(notes).toContain('nic0 wrote 64K over 1 DMA range');
    const revoke = await runScenario(loadScenarioFile(resolveScenarioTarget('vfio-dmabuf-revoke')));
    const resetNote = revoke.steps.flatMap((s) => s.notes).find((n) => n.includes('reset'));
    expect(resetNote).toMatch(/: 1 dma-buf revoked, 2 importers notified, 1 restored$/);
    expect(revoke.steps.flatMap((s) => s.notes).some((n) => n.endsWith('512 page-list entries'))).toBe(true);
  }, 30_000);
});

// The io-pgtable-arm self-test (drivers/iommu/io-pgtable-arm.c arm_lpae_run_tests, now the KUnit
// io-pgtable-arm-selftests.c) run against our ARM LPAE format, from ../shared/data/oracles.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { isPhysrError } from '../../src/core/index.ts';
import { armLpaeFormat, IoPageTable, lowestGranule, pageSizes, parseProt } from './oracle-helpers.ts';

interface Op {
  op: string;
  format?: string;
  iova?: string;
  paddr?: string;
  size?: string;
  prot?: string;
  expect: string;
  section?: string;
}
interface Case {
  id: number;
  kind?: string;
  flavor: string;
  pgsize_bitmap?: string;
  pgsize_sets?: string[];
  ias?: number;
  oas?: number;
  ias_values?: number[];
  address_sizes?: number[];
  expected_runs?: number;
  operations?: Op[];
}

const oracle = JSON.parse(
  readFileSync(new URL('../../../shared/data/oracles/io_pgtable.json', import.meta.url), 'utf8'),
) as { cases: Case[] };

/** Runs one operation list; returns the number of checks made. */
function run(ops: readonly Op[], bitmap: bigint, ias: number, oas: number): number {
  let table: IoPageTable | undefined;
  let checks = 0;
  const granule = lowestGranule(bitmap);
  for (const op of ops) {
    const where = `${op.op} ${op.iova ?? ''} (${op.expect})`;
    if (op.op === 'alloc') {
      const stage = op.format === 'ARM_64_LPAE_S2' ? 2 : 1;
      table = new IoPageTable(armLpaeFormat({ granule, iasBits: ias, oasBits: oas, stage }));
      expect(table.pgsizeBitmap, 'pgsize bitmap').toBe(bitmap);
      continue;
    }
    const pt = table!;
    if (op.op === 'free') {
      pt.clear();
      expect(pt.tablePages).toBe(1);
      table = undefined;
      continue;
    }
    const iova = BigInt(op.iova!);
    if (op.op === 'iova_to_phys') {
      const expected = op.section === 'partial_unmap' ? iova : BigInt(op.expect.split(' ')[0]!);
      expect(pt.iovaToPhys(iova), where).toBe(expected);
    } else if (op.op === 'map') {
      const size = BigInt(op.size!);
      const paddr = BigInt(op.paddr!);
      const refusedSplit = op.section === 'partial_unmap'; // see the unmap case below
      let error: unknown;
      try {
        pt.map(iova, paddr, size, parseProt(op.prot!));
      } catch (e) {
        error = e;
      }
      if (op.expect.startsWith('success') && !refusedSplit) {
        expect(error, where).toBeUndefined();
        if (op.expect.includes('mapped ==')) expect(pt.lookup(iova)?.pageSize).toBe(size);
      } else {
        expect(isPhysrError(error, 'EEXIST'), where).toBe(true);
      }
    } else if (op.op === 'unmap') {
      const size = BigInt(op.size!);
      // Pre-6.13 kernels split a block to unmap part of it; we follow the current kernel (generic_pt
      // __unmap_range, io-pgtable-arm since v6.13): an unmap starting inside a block removes nothing.
      const expected = op.section === 'partial_unmap' ? 0n : BigInt(op.expect.split(' ')[1]!);
      expect(pt.unmap(iova, size), where).toBe(expected);
    } else {
      throw new Error(`unknown op ${op.op}`);
    }
    checks++;
  }
  return checks;
}

/** The self-test procedure for one configuration (the oracle's `semantics`, steps 1-7). */
function procedure(bitmap: bigint, ias: number, latest: boolean): Op[] {
  const ops: Op[] = [];
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  const GIB = 1n << 30n;
  const sizes = pageSizes(bitmap);
  for (const format of ['ARM_64_LPAE_S1', 'ARM_64_LPAE_S2']) {
    ops.push({ op: 'alloc', format, expect: 'ok' });
    for (const n of [0n, 1n, 2n]) ops.push({ op: 'iova_to_phys', iova: hex(n * GIB + 42n), expect: '0' });
    sizes.forEach((size, i) => {
      const iova = BigInt(i) * GIB;
      ops.push({
        op: 'map',
        iova: hex(iova),
        paddr: hex(iova),
        size: hex(size),
        prot: 'READ|WRITE|NOEXEC|CACHE',
        expect: 'success',
      });
      ops.push({
        op: 'map',
        iova: hex(iova),
        paddr: hex(iova + size),
        size: hex(size),
        prot: 'READ|NOEXEC',
        expect: 'failure',
      });
      ops.push({ op: 'iova_to_phys', iova: hex(iova + 42n), expect: hex(iova + 42n) });
    });
    sizes.forEach((size, i) => {
      const iova = BigInt(i) * GIB;
      ops.push({ op: 'unmap', iova: hex(iova), size: hex(size), expect: `returns ${hex(size)}` });
      ops.push({ op: 'iova_to_phys', iova: hex(iova + 42n), expect: '0' });
      ops.push({
        op: 'map',
        iova: hex(iova),
        paddr: hex(iova),
        size: hex(size),
        prot: 'WRITE',
        expect: 'success',
      });
      ops.push({ op: 'iova_to_phys', iova: hex(iova + 42n), expect: hex(iova + 42n) });
    });
    if (latest) {
      const size = sizes.at(-1)!;
      const iova = (1n << BigInt(ias)) - size;
      ops.push({
        op: 'map',
        iova: hex(iova),
        paddr: hex(iova),
        size: hex(size),
        prot: 'READ|WRITE|NOEXEC|CACHE',
        expect: 'success (0) and mapped ==',
      });
      ops.push({ op: 'unmap', iova: hex(iova), size: hex(size), expect: `returns ${hex(size)}` });
    }
    ops.push({ op: 'free', expect: 'freed' });
  }
  return ops;
}

describe('io-pgtable-arm self-test oracle', () => {
  for (const c of oracle.cases.filter((c) => c.operations !== undefined)) {
    test(`case ${c.id}: ${c.flavor} ${c.pgsize_bitmap} ias ${c.ias} oas ${c.oas}`, () => {
      const bitmap = BigInt(c.pgsize_bitmap!);
      expect(run(c.operations!, bitmap, c.ias!, c.oas!)).toBeGreaterThan(30);
    });
  }

  test('the procedure we expand for the matrices reproduces the listed latest operation lists', () => {
    for (const c of oracle.cases.filter((c) => c.operations !== undefined && c.flavor.startsWith('latest'))) {
      const mine = procedure(BigInt(c.pgsize_bitmap!), c.ias!, true);
      const strip = (ops: readonly Op[]) =>
        ops.map((o) => [o.op, o.iova, o.paddr, o.size, o.prot, o.format].join(' '));
      expect(strip(mine)).toEqual(strip(c.operations!));
    }
  });

  for (const c of oracle.cases.filter((c) => c.kind === 'matrix')) {
    test(`case ${c.id}: ${c.flavor} matrix, ${c.expected_runs} configurations all pass`, () => {
      const latest = c.flavor.startsWith('latest');
      let runs = 0;
      for (const set of c.pgsize_sets!) {
        const bitmap = BigInt(set.split(' ')[0]!);
        const sizes = latest ? c.address_sizes! : [48];
        for (const oas of sizes) {
          for (const ias of latest ? c.address_sizes!.filter((i) => i <= oas) : c.ias_values!) {
            run(procedure(bitmap, ias, latest), bitmap, ias, oas);
            runs++;
          }
        }
      }
      expect(runs).toBe(c.expected_runs);
    });
  }
});

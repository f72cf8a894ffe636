/**
 * alloc_iova's cached nodes, its retry from the limit and max32_alloc_size at the 4 GiB boundary
 * (drivers/iommu/iova.c: __alloc_and_insert_iova_range, __cached_rbnode_insert_update,
 * __cached_rbnode_delete_update, iova_find_limit; unchanged 6.12 .. 7.1). Each vector is one
 * domain's life in the kernel diff target's notation (test/kernel/targets/iova.ts: 4K granule,
 * start pfn 1) with the output of 6.12's iova.c compiled in userspace by `npm run test:kernel`:
 * every returned pfn (0: the allocation failed), then the ranges left in the tree.
 *   a SIZE LIMIT ALIGNED   alloc_iova           A SIZE LIMIT FLUSH   alloc_iova_fast
 *   f K                    free op K's range    r LO HI              reserve_iova
 */
import { describe, expect, test } from 'vitest';
import { type IovaCase, iovaTarget } from '../kernel/targets/iova.ts';

const H = 2 ** 36 - 1; // a pfn limit far above 4 GiB
const L32 = 0xf_ffff; // the last pfn below 4 GiB
const B = 2 ** 35; // a base pfn above 4 GiB

function parse(ops: string): IovaCase {
  const t = ops.trim().split(/\s+/);
  const out: IovaCase['ops'][number][] = [];
  for (let i = 0; i < t.length; ) {
    const op = t[i++];
    const n = () => Number(t[i++]);
    if (op === 'a') out.push({ op, size: n(), limit: n(), aligned: n() === 1 });
    else if (op === 'A') out.push({ op, size: n(), limit: n(), flush: n() === 1 });
    else if (op === 'f') out.push({ op, index: n() });
    else if (op === 'r') out.push({ op, lo: n(), hi: n() });
    else if (op === 'c') out.push({ op });
    else throw new Error(`bad op ${op}`);
  }
  return { ops: out };
}

const VECTORS: ReadonlyArray<{ rule: string; ops: string; kernel: string }> = [
  {
    rule: 'nothing fits below the cached node: the retry searches between the limit and it, finding the hole an aligned range left',
    ops: 'a 5 15 1  a 7 15 0  a 3 15 0',
    kernel: '8 1 13 | 1-7 8-12 13-15',
  },
  {
    rule: 'the retry runs once: failing above the cached node [2,2] too, the allocation fails',
    ops: 'a 13 15 0  a 1 15 0  a 1 15 0  f 2  a 2 15 0',
    kernel: '3 2 1 f 0 | 2-2 3-15',
  },
  {
    rule: 'limits above 4 GiB search from cached_node, limits below from cached32_node',
    ops: `a 1 ${H} 0  a 1 ${L32} 0  a 1 ${H} 0`,
    kernel: `${H} ${L32} ${H - 1} | ${L32}-${L32} ${H - 1}-${H - 1} ${H}-${H}`,
  },
  {
    rule: 'above 4 GiB as below: the next search starts at the cached node, not in the hole above it',
    ops: `a 5 ${H} 1  a 1 ${H} 0`,
    kernel: `${H - 7} ${H - 8} | ${H - 8}-${H - 8} ${H - 7}-${H - 3}`,
  },
  {
    rule: 'a range ending at the first pfn of 4 GiB becomes cached_node (pfn_hi < dma_32bit_pfn is false)',
    ops: `a 1 ${0x10_0000} 0  a 1 ${0x1f_ffff} 0`,
    kernel: `${0x10_0000} ${L32} | ${L32}-${L32} ${0x10_0000}-${0x10_0000}`,
  },
  {
    rule: 'a range ending one pfn below 4 GiB becomes cached32_node',
    ops: `a 3 ${L32} 1  a 1 ${L32} 0`,
    kernel: '1048572 1048571 | 1048571-1048571 1048572-1048574',
  },
  {
    rule: 'freeing a range at or above cached32_node moves it to the next range up',
    ops: 'a 5 15 1  a 2 15 0  a 2 15 0  f 1  a 1 15 0',
    kernel: '8 6 4 f 7 | 4-5 7-7 8-12',
  },
  {
    rule: 'freeing a range below cached32_node leaves it where it is',
    ops: 'a 1 15 0  a 1 15 0  a 1 15 0  a 1 15 0  f 1  f 3  a 1 15 0',
    kernel: '15 14 13 12 f f 14 | 13-13 14-14 15-15',
  },
  {
    rule: 'freeing a range above 4 GiB leaves cached32_node',
    ops: `a 3 ${L32} 1  a 1 ${H} 0  f 1  a 1 ${L32} 0`,
    kernel: '1048572 68719476735 f 1048571 | 1048571-1048571 1048572-1048574',
  },
  {
    rule: 'freeing a range ending at the first pfn of 4 GiB leaves cached32_node',
    ops: `a 3 ${L32} 1  a 1 ${0x10_0000} 0  f 1  a 1 ${L32} 0`,
    kernel: '1048572 1048576 f 1048571 | 1048571-1048571 1048572-1048574',
  },
  {
    rule: 'freeing cached_node itself moves it to the next range up',
    ops: `a 5 ${H} 1  a 1 ${H} 0  a 1 ${H} 0  f 2  a 1 ${H} 0`,
    kernel: `${H - 7} ${H - 8} ${H - 9} f ${H - 9} | ${H - 9}-${H - 9} ${H - 8}-${H - 8} ${H - 7}-${H - 3}`,
  },
  {
    rule: 'freeing a range above cached_node moves it to the range above the freed one',
    ops: `a 5 ${H} 1  a 1 ${H} 0  a 1 ${H} 0  f 1  a 1 ${H} 0`,
    kernel: `${H - 7} ${H - 8} ${H - 9} f ${H - 8} | ${H - 9}-${H - 9} ${H - 8}-${H - 8} ${H - 7}-${H - 3}`,
  },
  {
    rule: 'max32_alloc_size: only a free starting below 4 GiB lifts a failure under a 32-bit limit',
    ops: `a 1023 1023 0  a 1 1023 0  a 1 ${H} 0  f 2  a 1 ${L32} 0  a 1 ${0x10_0000} 0  f 5  a 1 ${L32} 0`,
    kernel: `1 0 ${H} f 0 ${0x10_0000} f 0 | 1-1023`,
  },
  {
    rule: 'reserve_iova grows a reserved range down in place: a cached_node pointing at it stays with it',
    ops: `r ${B + 10} ${B + 12}  a 1 ${B + 15} 0  a 2 ${B + 9} 0  f 2  r ${B + 5} ${B + 11}  a 1 ${B + 15} 0`,
    kernel: `r ${B + 15} ${B + 8} f r ${B + 4} | ${B + 4}-${B + 4} ${B + 5}-${B + 12} ${B + 15}-${B + 15}`,
  },
  {
    rule: 'growing a reserved range that is not the cached node moves neither cached node (below 4 GiB)',
    ops: 'r 10 12  a 1 15 0  r 5 11  a 1 15 0',
    kernel: 'r 15 r 14 | 5-12 14-14 15-15',
  },
  {
    rule: 'growing a reserved range that is not the cached node moves neither cached node (above 4 GiB)',
    ops: `r ${B + 10} ${B + 12}  a 1 ${B + 15} 0  r ${B + 5} ${B + 11}  a 1 ${B + 15} 0`,
    kernel: `r ${B + 15} r ${B + 14} | ${B + 5}-${B + 12} ${B + 14}-${B + 14} ${B + 15}-${B + 15}`,
  },
];

describe('alloc_iova cached nodes and retry: vectors from 6.12 iova.c in userspace', () => {
  test.each(VECTORS)('$rule', ({ ops, kernel }) => {
    expect(iovaTarget.model(parse(ops), '6.12')).toBe(kernel);
  });
});

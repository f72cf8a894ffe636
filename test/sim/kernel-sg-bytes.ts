import { expect } from 'vitest';
import type { ScenarioReport } from '../../src/sim/index.ts';

/**
 * What the kernel allocates for scatterlist metadata, computed from lib/scatterlist.c and
 * include/linux/scatterlist.h sizes alone (64-bit, no CONFIG_DEBUG_SG), independently of
 * src/core/sg-table.ts: the honest-metadata test bounds every scenario step's charge with these.
 */

/** struct scatterlist: page_link 8 + offset 4 + length 4 + dma_address 8 + dma_length 4 + dma_flags 4. */
export const SCATTERLIST = 8 + 4 + 4 + 8 + 4 + 4;
/** struct sg_table: sgl 8 + nents 4 + orig_nents 4. */
export const SG_TABLE = 8 + 4 + 4;
/** SG_MAX_SINGLE_ALLOC: PAGE_SIZE / sizeof(struct scatterlist). */
export const MAX_SINGLE_ALLOC = 4096 / SCATTERLIST;
/** A struct page pointer. */
export const PAGE_POINTER = 8;

/**
 * Slots __sg_alloc_table allocates for n entries: chunks of MAX_SINGLE_ALLOC whose last slot is a
 * chain link, the final chunk exactly as long as what is left.
 */
export function sgAllocTableSlots(n: number): number {
  let slots = 0;
  let left = n;
  while (left > MAX_SINGLE_ALLOC) {
    slots += MAX_SINGLE_ALLOC;
    left -= MAX_SINGLE_ALLOC - 1;
  }
  return slots + left;
}

/** Bytes sg_alloc_table(n) takes: the table plus its slots. */
export function sgAllocTableBytes(n: number): number {
  return SG_TABLE + SCATTERLIST * sgAllocTableSlots(n);
}

/**
 * The most sg_alloc_append_table_from_pages can allocate for n entries when later rounds are still
 * to come (ib_umem_get): every chunk may be a full page of slots, one chain link per full chunk.
 */
export function sgAppendTableMaxBytes(n: number): number {
  let chunks = 1;
  let left = n;
  while (left > MAX_SINGLE_ALLOC) {
    chunks++;
    left -= MAX_SINGLE_ALLOC - 1;
  }
  return SG_TABLE + chunks * MAX_SINGLE_ALLOC * SCATTERLIST;
}

/** ib_umem_get's page_list: one page of struct page pointers. */
export const UMEM_PAGE_LIST = 4096;

/** Fails when any step of the report charges more scatterlist metadata than the kernel allocates. */
export function expectSgWithinKernel(report: ScenarioReport): void {
  for (const step of report.steps) {
    const m = step.metrics;
    const retained = m['core.sg_metadata_bytes'] ?? 0;
    const scratch = m['core.sg_scratch_bytes'] ?? 0;
    const entries = m['core.sg_entries'] ?? 0;
    const pages = m['mm.pinned_pages'] ?? 0;
    const where = `${report.name} step ${step.index + 1} (${step.op})`;
    if (step.op === 'pin') {
      // A pin in the sg form is its page array, for as long as the pin lives.
      expect(retained, where).toBeLessThanOrEqual(PAGE_POINTER * pages);
      expect(scratch, where).toBe(0);
    } else if (step.op === 'register-mr') {
      expect(retained, where).toBeLessThanOrEqual(sgAppendTableMaxBytes(entries));
      expect(scratch, where).toBeLessThanOrEqual(UMEM_PAGE_LIST);
    } else {
      expect(retained, where).toBeLessThanOrEqual(entries === 0 ? 0 : sgAllocTableBytes(entries));
      // A map from user pages holds at most its page array while it builds the table.
      expect(scratch, where).toBeLessThanOrEqual(PAGE_POINTER * pages);
    }
  }
}

/**
 * Target 2: drivers/iommu/iova.c, compiled whole (rbtree from tools/lib/rbtree.c), against
 * src/iommu/iova.ts. A case is one domain's life (4K granule, start pfn 1): reserve_iova at set-up,
 * then random alloc_iova, alloc_iova_fast, frees (free_iova_fast for fast allocations, free_iova
 * otherwise) and rcache flushes. Compared: every returned pfn, and every range left in the tree.
 */
import { join } from 'node:path';
import { isPhysrError, type SeededRandom } from '../../../src/core/index.ts';
import { IovaDomain } from '../../../src/iommu/index.ts';
import { C_DIR, type DiffTarget, gcc, writeGenerated } from '../harness.ts';

type IovaOp =
  | { readonly op: 'r'; readonly lo: number; readonly hi: number }
  | { readonly op: 'a'; readonly size: number; readonly limit: number; readonly aligned: boolean }
  | { readonly op: 'A'; readonly size: number; readonly limit: number; readonly flush: boolean }
  | { readonly op: 'f'; readonly index: number }
  | { readonly op: 'c' };

export interface IovaCase {
  readonly ops: readonly IovaOp[];
}

const LIMITS = [0xfffff, 0xfffff, 0xf_ffff_ffff, 0x3ff, 0xffff];

function randomSize(rng: SeededRandom): number {
  const r = rng.next();
  if (r < 0.6) return rng.int(1, 8);
  if (r < 0.85) return rng.int(1, 40);
  if (r < 0.97) return rng.int(1, 600);
  return rng.int(1, 70_000);
}

function generate(rng: SeededRandom): IovaCase {
  const ops: IovaOp[] = [];
  // Set-up reservations (MSI window, host-bridge windows) come before any allocation: the model
  // differs on purpose there, refusing to reserve over a live allocation (EBUSY; the kernel grows
  // the allocation). Reservations may overlap or touch each other (two drawn from 0xf000..0x10000
  // often do), as reserve_iova's growing of existing ranges is modelled.
  for (let i = rng.int(0, 3); i > 0; i--) {
    const lo = rng.pick([0xfee00, rng.int(1, 0xfffff), rng.int(0xf000, 0x10000)]);
    const hi = lo + rng.int(0, 0x200);
    ops.push({ op: 'r', lo, hi });
  }
  const limit = rng.pick(LIMITS);
  const n = rng.next() < 0.9 ? rng.int(1, 60) : rng.int(200, 900);
  const allocs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    const lim = rng.next() < 0.85 ? limit : rng.pick(LIMITS);
    if (r < 0.2) {
      allocs.push(ops.length);
      ops.push({ op: 'a', size: randomSize(rng), limit: lim, aligned: rng.next() < 0.5 });
    } else if (r < 0.6) {
      allocs.push(ops.length);
      ops.push({ op: 'A', size: randomSize(rng), limit: lim, flush: rng.next() < 0.8 });
    } else if (r < 0.98 && allocs.length > 0) {
      // Mostly recent allocations, so magazines fill and empty.
      const k =
        rng.next() < 0.7
          ? allocs.length - 1 - rng.int(0, Math.min(3, allocs.length - 1))
          : rng.int(0, allocs.length - 1);
      ops.push({ op: 'f', index: allocs[k]! });
    } else {
      ops.push({ op: 'c' });
    }
  }
  return { ops };
}

function encodeOp(o: IovaOp): string {
  if (o.op === 'r') return `r ${o.lo} ${o.hi}`;
  if (o.op === 'a') return `a ${o.size} ${o.limit} ${o.aligned ? 1 : 0}`;
  if (o.op === 'A') return `A ${o.size} ${o.limit} ${o.flush ? 1 : 0}`;
  if (o.op === 'f') return `f ${o.index}`;
  return 'c';
}

function encode(c: IovaCase): string {
  return `${c.ops.length} ${c.ops.map(encodeOp).join(' ')}`;
}

/** The pfn, or 0 when the model refuses with ENOMEM (the kernel's NULL / 0). */
function pfnOr0(fn: () => number): number {
  try {
    return fn();
  } catch (e) {
    if (isPhysrError(e, 'ENOMEM')) return 0;
    throw e;
  }
}

function model(c: IovaCase): string {
  const dom = new IovaDomain({ granule: 4096n, startPfn: 1 });
  const done: { fast: boolean; pfn: number; size: number; live: boolean }[] = [];
  const out: string[] = [];
  for (const o of c.ops) {
    switch (o.op) {
      case 'r':
        dom.reserveIova(o.lo, o.hi);
        out.push('r');
        done.push({ fast: false, pfn: 0, size: 0, live: false });
        break;
      case 'a': {
        const pfn = pfnOr0(() => dom.allocIova(o.size, o.limit, o.aligned));
        done.push({ fast: false, pfn, size: o.size, live: pfn !== 0 });
        out.push(String(pfn));
        break;
      }
      case 'A': {
        const pfn = pfnOr0(() => dom.allocIovaFast(o.size, o.limit, o.flush));
        done.push({ fast: true, pfn, size: o.size, live: pfn !== 0 });
        out.push(String(pfn));
        break;
      }
      case 'f': {
        const d = done[o.index]!;
        done.push({ fast: false, pfn: 0, size: 0, live: false });
        if (!d.live) {
          out.push('-');
          break;
        }
        if (d.fast) dom.freeIovaFast(d.pfn, d.size);
        else dom.freeIova(d.pfn);
        d.live = false;
        out.push('f');
        break;
      }
      case 'c':
        dom.flushRcaches();
        done.push({ fast: false, pfn: 0, size: 0, live: false });
        out.push('c');
        break;
    }
  }
  const ranges = dom.ranges().map((r) => ` ${r.pfnLo}-${r.pfnHi}`);
  return `${out.join(' ')} |${ranges.join('')}`;
}

export const iovaTarget: DiffTarget<IovaCase> = {
  name: 'iova',
  files: ['drivers/iommu/iova.c', 'include/linux/iova.h', 'tools/include', 'tools/lib/rbtree.c'],
  cases: { ci: 2000, thorough: 50_000 },
  build(tree, outDir) {
    writeGenerated(
      join(outDir, 'include/linux'),
      'iova.h',
      `#include "${join(tree, 'include/linux/iova.h')}"\n`,
    );
    writeGenerated(outDir, 'iova-source.c', `#include "${join(tree, 'drivers/iommu/iova.c')}"\n`);
    return gcc(
      [
        `-I${join(C_DIR, 'iova/shim')}`,
        `-I${join(outDir, 'include')}`,
        `-I${outDir}`,
        `-I${join(tree, 'tools/include')}`,
        join(C_DIR, 'iova/driver.c'),
        join(tree, 'tools/lib/rbtree.c'),
      ],
      outDir,
      'iova',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};

/**
 * Memory steps: `allocate` (user buffers: anon base pages, THP, hugetlb 2M/1G, or folios placed
 * scattered / on a node), `free` (munmap of a buffer), `pin` (pin_user_pages in the physr form or as the legacy page array), and
 * the CPU's own accesses `cpu-write`, `cpu-read`, `check` (to user buffers or to dma-buf memory).
 */
import { COUNTER, fail, formatHex, formatSize, type SeededRandom } from '../core/index.ts';
import {
  HUGETLB_ORDER_1G,
  HUGETLB_ORDER_2M,
  MemorySystem,
  MmStruct,
  pinUserPagesLegacyWhole,
  pinUserPagesWhole,
} from '../mm/index.ts';
import { type ByteSource, type Folio, folioPhys } from '../platform/index.ts';
import { pinUnderDesigns } from './designs.ts';
import { firstMismatch, formatPattern, type Pattern, patternSource } from './pattern.ts';
import { registerStep, type StepResult } from './registry.ts';
import type { SimContext } from './sim-context.ts';
import { isBuffer, isDmabuf, SimBuffer, SimPin } from './sim-objects.ts';
import { type SimWorld, worldOf } from './sim-world.ts';

const PAGE = 0x1000n;

/** Where a step's bytes live: a user buffer, or dma-buf memory (the exporter's CPU view). */
function cpuBytes(context: SimContext, name: string) {
  const world = worldOf(context);
  const kind = context.objects.kindOf(name);
  if (kind === 'dmabuf') {
    const dmabuf = context.objects.get(name, 'dmabuf', isDmabuf);
    return {
      size: dmabuf.buf.size,
      read: (offset: bigint, length: number) => readPhys(world, dmabuf.phys.slice(offset, length), length),
      write: (offset: bigint, data: Uint8Array) =>
        writePhys(world, dmabuf.phys.slice(offset, data.length), data),
      writeSource: (offset: bigint, length: bigint, source: ByteSource) => {
        let at = offset;
        dmabuf.phys.slice(offset, length).forEachRange((address, len) => {
          world.platform.model.bytes.writeSource(address, len, source, at);
          at += len;
        });
      },
    };
  }
  const buffer = context.objects.get(name, 'buffer', isBuffer);
  return {
    size: buffer.length,
    read: (offset: bigint, length: number) => buffer.mm.readUser(buffer.va + offset, length),
    write: (offset: bigint, data: Uint8Array) => buffer.mm.writeUser(buffer.va + offset, data),
    writeSource: (offset: bigint, length: bigint, source: ByteSource) =>
      buffer.mm.writeUserSource(buffer.va + offset, length, source, offset),
  };
}

function readPhys(
  world: SimWorld,
  list: { forEachRange(fn: (a: bigint, l: bigint) => void): void },
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  list.forEachRange((address, len) => {
    out.set(world.platform.model.bytes.read(address, Number(len)), at);
    at += Number(len);
  });
  return out;
}

function writePhys(
  world: SimWorld,
  list: { forEachRange(fn: (a: bigint, l: bigint) => void): void },
  data: Uint8Array,
): void {
  let at = 0;
  list.forEachRange((address, len) => {
    world.platform.model.bytes.write(address, data.subarray(at, at + Number(len)));
    at += Number(len);
  });
}

/**
 * Most bytes one step may move as real bytes (a DMA, a CPU read handed to `expect`). Written
 * patterns are descriptions and `check` compares in blocks, so neither needs a bound; a step that
 * must hold its bytes at once is refused above this, rather than exhausting the simulator.
 */
export const MAX_STEP_TRANSFER = 256n << 20n;

/** E2BIG for a step that would hold more than {@link MAX_STEP_TRANSFER} bytes at once. */
export function checkTransfer(what: string, length: bigint): void {
  if (length <= MAX_STEP_TRANSFER) return;
  fail(
    'E2BIG',
    `${what} of ${formatSize(length)} moves real bytes: at most ${formatSize(MAX_STEP_TRANSFER)} a step (split it, or use check, which compares in blocks)`,
  );
}

/** Bytes `check` reads and compares at a time. */
const CHECK_BLOCK = 1n << 20n;

function checkSpan(name: string, size: bigint, offset: bigint, length: bigint): number {
  if (offset + length > size) {
    fail('EINVAL', `${formatHex(offset)} + ${formatSize(length)} is outside "${name}" (${formatSize(size)})`);
  }
  return Number(length);
}

/** Seeded Fisher–Yates shuffle. */
function shuffle<T>(items: T[], random: SeededRandom): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Folios for a placed buffer. Scattered: base pages of which no two are physically adjacent and
 * whose order is shuffled — taken two at a time, the odd-pfn page handed back (its even buddy stays
 * allocated, so the buddy allocator cannot merge them: mm/page_alloc.c __free_one_page). Otherwise
 * the largest folios the node has.
 */
function placeFolios(
  world: SimWorld,
  pages: number,
  scattered: boolean,
  node: number | undefined,
  random: SeededRandom,
) {
  const folios = world.platform.model.folios;
  const options = node === undefined ? {} : { node, thisNode: true };
  if (!scattered)
    return folios.allocPages(BigInt(pages) * PAGE, { ...options, preferredOrder: HUGETLB_ORDER_2M });
  const kept: Folio[] = [];
  const handBack: Folio[] = [];
  // Pages come out of the buddy in address order: take them all first, then give back every odd
  // pfn (freeing as we go would hand the same page out again).
  while (kept.length < pages) {
    const folio = folios.allocFolio(0, options);
    if ((folio.pfn & 1n) === 0n) kept.push(folio);
    else handBack.push(folio);
  }
  for (const folio of handBack) folios.freeFolio(folio);
  return shuffle(kept, random);
}

/**
 * ENOMEM at once for a buffer larger than the free RAM: populating it page by page would only find
 * out after materialising the whole of memory.
 */
function checkFits(world: SimWorld, length: bigint): void {
  const model = world.platform.model;
  const free = BigInt(model.folios.freePages) * PAGE;
  if (length <= free) return;
  const total = BigInt(model.folios.totalPages) * PAGE;
  fail(
    'ENOMEM',
    `${formatSize(length)} does not fit in the RAM of platform ${model.name}: ${gib(total)}, of which ${gib(free)} free`,
  );
}

/**
 * Most pages a `fragmented` buffer may have. Its pages are scattered on purpose, so each one is its
 * own folio object, page-cache slot, page-table extent and physr range in the model (as each is its
 * own struct page, PTE and range in the kernel): its cost grows with its size, about 300 bytes a
 * page here. Every other buffer costs what is materialised: anonymous base pages are runs of
 * frames in a memmap (9 bytes a page), large folios a few objects.
 */
export const MAX_SCATTERED_PAGES_PER_BUFFER = 1 << 18;

function checkScatteredPages(length: bigint): void {
  if (length / PAGE <= BigInt(MAX_SCATTERED_PAGES_PER_BUFFER)) return;
  fail(
    'E2BIG',
    `${formatSize(length)} of scattered pages is ${length / PAGE} pages; physr models at most ${MAX_SCATTERED_PAGES_PER_BUFFER} (${formatSize(BigInt(MAX_SCATTERED_PAGES_PER_BUFFER) * PAGE)}) scattered pages a buffer, each its own folio, extent and range: drop fragmented: true for base pages in runs, or split the buffer`,
  );
}

function gib(bytes: bigint): string {
  return `${(Number(bytes) / 2 ** 30).toFixed(1)} GiB`;
}

let registered = false;

export function registerMemorySteps(): void {
  if (registered) return;
  registered = true;

  registerStep('allocate', (body, context) => {
    const world = worldOf(context);
    const length = (body.size + PAGE - 1n) & -PAGE;
    checkFits(world, length);
    if (body.fragmented) checkScatteredPages(length);
    let mm: MmStruct;
    let va: bigint;
    let how: string;
    if (body.fragmented || body.node !== undefined) {
      if (body.backing !== 'anon')
        fail(
          'EINVAL',
          `fragmented or node-bound buffers are base pages: backing must be anon, not ${body.backing}`,
        );
      // A memfd (shmem) whose folios the scenario places: anon faults cannot be steered to a node
      // or to scattered frames, a page cache can be filled with chosen folios.
      const pages = Number(length / PAGE);
      const placed = placeFolios(world, pages, body.fragmented, body.node, context.random);
      const maxOrder = placed.reduce((m, f) => Math.max(m, f.order), 0);
      const file = world.memory.createFile(body.name, length, {
        needsDirtyTracking: false,
        maxFolioOrder: maxOrder,
      });
      let index = 0;
      for (const folio of placed) {
        file.cache.set(index, folio);
        index += 2 ** folio.order;
      }
      mm = world.mm;
      va = mm.mmap({ kind: 'file', file, shared: true, length });
      const contiguous = placed.length === 1 ? 'one folio' : `${placed.length} folios`;
      how = `memfd, ${contiguous}${body.fragmented ? ' scattered' : ''}${body.node === undefined ? '' : ` on node ${body.node}`}, first at ${formatHex(folioPhys(placed[0]!))}`;
    } else if (body.backing === 'hugetlb-2M' || body.backing === 'hugetlb-1G') {
      const order = body.backing === 'hugetlb-1G' ? HUGETLB_ORDER_1G : HUGETLB_ORDER_2M;
      const huge = PAGE << BigInt(order);
      const count = Number((body.size + huge - 1n) / huge);
      world.memory.reserveHugetlb(order, count);
      mm = world.mm;
      va = mm.mmap({ kind: 'hugetlb', hugeOrder: order, length: body.size });
      how = `hugetlbfs, ${count} × ${formatSize(huge)} page${count === 1 ? '' : 's'}`;
    } else {
      // anon: base pages (THP off, or a fault on a fragmented machine); thp: PMD-sized folios first.
      const system = new MemorySystem(world.platform.model.folios, {
        bytes: world.platform.model.bytes,
        metrics: world.machine.metrics,
        anonOrders: body.backing === 'thp' ? [HUGETLB_ORDER_2M] : [],
      });
      mm = new MmStruct(system);
      va = mm.mmap({ kind: 'anon', length });
      how = body.backing === 'thp' ? 'anonymous, THP' : 'anonymous, base pages';
    }
    mm.touch(va, length, { write: true });
    context.objects.define(body.name, 'buffer', new SimBuffer(mm, va, body.size, body.backing));
    return { notes: [`${body.name}: ${formatSize(body.size)} at VA ${formatHex(va)} (${how})`] };
  });

  registerStep('free', (body, context) => {
    const buffer = context.objects.get(body.buffer, 'buffer', isBuffer);
    const folios = worldOf(context).platform.model.folios;
    const before = folios.freePages;
    buffer.mm.munmap(buffer.va, (buffer.length + PAGE - 1n) & -PAGE);
    context.objects.delete(body.buffer);
    const back = folios.freePages - before;
    return {
      notes: [
        `${body.buffer}: ${formatSize(buffer.length)} unmapped; ${back} page${back === 1 ? '' : 's'} back to the buddy allocator (${folios.freePages} free)`,
      ],
    };
  });

  registerStep('pin', (body, context) => {
    const buffer = context.objects.get(body.buffer, 'buffer', isBuffer);
    const length = body.length ?? buffer.length - body.offset;
    checkSpan(body.buffer, buffer.length, body.offset, length);
    const flags = { write: true, longterm: body.longterm };
    const start = buffer.va + body.offset;
    const name = body.name ?? `${body.buffer}.pin`;
    const underDesigns = () => pinUnderDesigns(buffer.mm, start, length, context.scenario.designs);
    if (body.via === 'physr') {
      const pinned = pinUserPagesWhole(buffer.mm, start, length, flags);
      context.objects.define(
        name,
        'pin',
        new SimPin(buffer, body.offset, length, 'physr', pinned, undefined),
      );
      return {
        notes: [
          `${name}: ${pinned.pageCount} pages as ${pinned.phyrs.count} ranges, ${pinned.metadataBytes} B`,
        ],
        designRuns: underDesigns(),
      };
    }
    const pages = pinUserPagesLegacyWhole(buffer.mm, start, length, flags);
    // The page array is the legacy design's metadata (8 bytes a page), before any sg_table.
    context.metrics.add(COUNTER.sgMetadataBytes, pages.metadataBytes);
    context.objects.define(name, 'pin', new SimPin(buffer, body.offset, length, 'sg', undefined, pages));
    return {
      notes: [`${name}: ${pages.pageCount} page pointers, ${pages.metadataBytes} B`],
      designRuns: underDesigns(),
    };
  });

  registerStep('cpu-write', (body, context) => {
    const target = cpuBytes(context, body.buffer);
    checkSpan(body.buffer, target.size, body.offset, body.length);
    // The pattern stays a description until its bytes are read (a DMA, a check).
    target.writeSource(body.offset, body.length, patternSource(body.pattern));
    return { notes: [`CPU wrote ${formatSize(body.length)} of ${formatPattern(body.pattern)}`] };
  });

  registerStep('cpu-read', (body, context) => {
    const target = cpuBytes(context, body.buffer);
    checkTransfer('cpu-read', body.length);
    const n = checkSpan(body.buffer, target.size, body.offset, body.length);
    return { observed: { bytes: target.read(body.offset, n), offset: body.offset } };
  });

  registerStep('check', (body, context): StepResult => {
    const target = cpuBytes(context, body.buffer);
    checkSpan(body.buffer, target.size, body.offset, body.length);
    // Block by block, so a check of gigabytes holds one block of bytes at a time.
    const end = body.offset + body.length;
    let at = body.offset;
    do {
      const take = end - at < CHECK_BLOCK ? end - at : CHECK_BLOCK;
      const report = patternExpectation(body.pattern, at, target.read(at, Number(take)));
      if (!report.met) return { expectations: [report] };
      at += take;
    } while (at < end);
    return {
      expectations: [
        { what: `bytes = ${formatPattern(body.pattern)}`, met: true, detail: `${body.length} bytes match` },
      ],
    };
  });
}

/** The expectation report for bytes that should equal a pattern. */
export function patternExpectation(pattern: Pattern, offset: bigint, bytes: Uint8Array) {
  const at = firstMismatch(pattern, offset, bytes);
  return {
    what: `bytes = ${formatPattern(pattern)}`,
    met: at < 0,
    detail:
      at < 0
        ? `${bytes.length} bytes match`
        : `byte at offset ${formatHex(offset + BigInt(at))} is 0x${bytes[at]!.toString(16).padStart(2, '0')}`,
  };
}

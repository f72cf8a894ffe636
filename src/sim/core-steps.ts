/**
 * Executors for the steps that need only core: `build-list` (a PhyrList from ranges),
 * `compare-metadata` (that list vs the sg_table a driver would build for it), `expect-counters`
 * (scenario totals), and the `core-only` platform they run on (no memory map, no devices).
 */
import { COUNTER, formatSize, PhyrList, PhyrListBuilder, phyrListToSgTable } from '../core/index.ts';
import { checkCounters } from './engine.ts';
import { registerPlatform, registerStep } from './registry.ts';

function isPhyrList(value: unknown): value is PhyrList {
  return value instanceof PhyrList;
}

export const CORE_ONLY_PLATFORM = 'core-only';

let registered = false;

/** Registers the core steps and platform once (later calls do nothing). */
export function registerCoreSteps(): void {
  if (registered) return;
  registered = true;

  registerPlatform(CORE_ONLY_PLATFORM, {
    description: 'no memory map or devices: for range-list and metadata scenarios that need only core',
    create: () => ({ name: CORE_ONLY_PLATFORM, description: 'core only', defaultIommuMode: 'strict' }),
  });

  registerStep('build-list', (body, context) => {
    // Contiguous ranges merge as they are appended, bounded by the max segment size; the segment
    // boundary then cuts ranges as dma_get_seg_boundary requires (include/linux/dma-mapping.h).
    const builder = new PhyrListBuilder(
      body.maxSegmentSize === undefined ? {} : { maxSegmentSize: body.maxSegmentSize },
    );
    for (const range of body.ranges) builder.append(range.addr, range.len);
    let list = builder.build();
    if (body.segmentBoundary !== undefined) list = list.split({ segmentBoundaryMask: body.segmentBoundary });
    context.objects.define(body.name, 'list', list);
    context.metrics.add(COUNTER.physrMetadataBytes, list.metadataBytes);
    context.metrics.add(COUNTER.physrRanges, list.count);
    return {
      path: 'physr',
      notes: [
        `${body.name}: ${list.count} range${list.count === 1 ? '' : 's'}, ${formatSize(list.totalLength)}, ${list.metadataBytes} B`,
      ],
    };
  });

  registerStep('compare-metadata', (body, context) => {
    const list = context.objects.get(body.list, 'list', isPhyrList);
    // A driver holding the same memory in a scatterlist: sg->length is 32-bit, so longer ranges are
    // cut (include/linux/scatterlist.h), and the table is chained every 128 entries (lib/scatterlist.c).
    const table = phyrListToSgTable(list);
    context.metrics.add(COUNTER.sgMetadataBytes, table.metadataBytes);
    context.metrics.add(COUNTER.sgEntries, table.origNents);
    return {
      path: 'sg',
      notes: [
        `${body.list}: physr ${list.count} range${list.count === 1 ? '' : 's'} in ${list.metadataBytes} B; ` +
          `scatterlist ${table.origNents} entries in ${table.metadataBytes} B`,
      ],
    };
  });

  registerStep('expect-counters', (body, context) => ({
    expectations: checkCounters(body.counters, context.scenarioMetrics()),
  }));
}

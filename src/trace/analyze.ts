/**
 * One call for a whole trace: stream it, replay its DMA state, optionally replay its mappings
 * through the model in both designs, and gather everything a report needs.
 */
import type { Readable } from 'node:stream';
import { formatError } from '../core/index.ts';
import type { TraceEvent } from './events.ts';
import type { Finding, FindingClass } from './findings.ts';
import { type ModelComparison, ModelReplay, type ModelTarget } from './model-replay.ts';
import { type ReadOptions, readTraceFile, readTraceStream } from './read-trace.ts';
import { type DeviceCounts, type IommuCounts, TraceReplay } from './replay.ts';
import type { Timeline } from './timeline.ts';

export interface AnalyzeOptions extends ReadOptions {
  /** The traced kernel's release (decides whether a missing iommu:map is unknown). */
  readonly kernel?: string;
  /** Replay the mappings through the model on this machine (both designs). */
  readonly model?: ModelTarget & { readonly platform: string };
  /** Most events on each timeline (see ReplayOptions). */
  readonly timelineEvents?: number;
  /** Read the trace from this stream (standard input) instead of the file; `file` then only names it. */
  readonly input?: Readable;
}

export interface TraceAnalysis {
  readonly file: string;
  readonly kernel: string | undefined;
  readonly lines: number;
  readonly events: number;
  readonly unknownEvents: ReadonlyMap<string, number>;
  readonly lostEvents: number;
  readonly skippedLines: number;
  /** The malformed lines skipped under --keep-going, formatted `file:line: event: reason`. */
  readonly skipped: readonly string[];
  readonly firstTimeUs: number | undefined;
  readonly lastTimeUs: number | undefined;
  readonly devices: ReadonlyMap<string, DeviceCounts>;
  readonly liveAtEnd: ReadonlyMap<string, number>;
  readonly iommu: IommuCounts;
  readonly iommuLiveAtEnd: number;
  readonly findings: readonly Finding[];
  readonly findingCounts: ReadonlyMap<FindingClass, number>;
  /** Each device's events over time (bounded), and the IOMMU's. */
  readonly timelines: ReadonlyMap<string, Timeline>;
  readonly iommuTimeline: Timeline;
  readonly comparison: (ModelComparison & { readonly platform: string }) | undefined;
}

export async function analyzeTrace(file: string, options: AnalyzeOptions = {}): Promise<TraceAnalysis> {
  const model = options.model === undefined ? undefined : new ModelReplay(options.model);
  const replay = new TraceReplay({
    ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
    ...(options.timelineEvents === undefined ? {} : { timelineEvents: options.timelineEvents }),
    ...(model === undefined
      ? {}
      : { onMap: (m) => model.onMap(m), onUnmap: (m, at) => model.onUnmap(m, at) }),
  });
  const onEvent = (e: TraceEvent) => replay.onEvent(e);
  const stats =
    options.input === undefined
      ? await readTraceFile(file, onEvent, options)
      : await readTraceStream(options.input, file, onEvent, options);
  const result = replay.finish();
  return {
    file,
    kernel: options.kernel,
    lines: stats.lines,
    events: stats.events,
    unknownEvents: stats.unknown,
    lostEvents: stats.lostEvents,
    skippedLines: stats.skippedLines,
    skipped: stats.skipped.map(formatError),
    firstTimeUs: result.firstTimeUs,
    lastTimeUs: result.lastTimeUs,
    devices: result.devices,
    liveAtEnd: result.liveAtEnd,
    iommu: result.iommu,
    iommuLiveAtEnd: result.iommuLiveAtEnd,
    findings: result.findings,
    findingCounts: result.findingCounts,
    timelines: result.timelines,
    iommuTimeline: result.iommuTimeline,
    comparison:
      model === undefined || options.model === undefined
        ? undefined
        : { ...model.finish(), platform: options.model.platform },
  };
}

/**
 * The JSON document the interactive page reads: every section optional, each the JSON the command
 * that made it prints (64-bit values as "0x…" strings). The view declares the shapes it reads here
 * and imports no model code: it gets JSON only.
 */
import type { DesignRunWords, RowWords, SummaryWords } from './wording.ts';

export interface ViewDocument {
  /** The page title (e.g. "physr run report"). */
  readonly title?: string;
  /** The command line that made the page, shown under the title. */
  readonly command?: string;
  /** `physr run --json`. */
  readonly run?: RunJson;
  /** `physr topo --json` plus the P2P decisions for pairs of its endpoints. */
  readonly topology?: TopologySection;
  /** A P2P matrix (provider × client decisions) without a tree. */
  readonly p2pMatrix?: P2pMatrixSection;
  /** A trace's events in time order. */
  readonly trace?: TraceSection;
}

export interface ExpectationJson {
  readonly what: string;
  readonly met: boolean;
  readonly detail: string;
}

export type RangePairJson = readonly [string, string];

export interface LayoutJson {
  readonly name: string;
  readonly design: 'physr' | 'sg';
  readonly iovaLayout?: 'packed' | 'aligned';
  readonly via: string;
  readonly physCount: number;
  readonly phys: readonly RangePairJson[];
  readonly dmaCount: number;
  readonly dma: readonly RangePairJson[];
  readonly bounce: readonly RangePairJson[];
}

export interface StepJson {
  readonly index: number;
  readonly op: string;
  readonly line?: number;
  readonly status: 'ok' | 'failed' | 'error' | 'skipped';
  readonly path?: 'physr' | 'sg';
  readonly expectations: readonly ExpectationJson[];
  readonly error?: { readonly errno: string; readonly reason: string };
  readonly refused?: { readonly errno: string; readonly reason: string };
  readonly notes: readonly string[];
  readonly metrics: Readonly<Record<string, number>>;
  readonly layout?: LayoutJson;
  /** What each design did for this step on its own copy of the machine. */
  readonly designRuns?: readonly DesignRunWords[];
}

/** One design's totals over the steps every compared design ran. */
export interface DesignTotalsJson {
  readonly design: string;
  readonly steps: number;
  readonly metadataBytes: number;
  readonly peakMetadataBytes: number;
  readonly entries: number;
  readonly iovaAllocations: number;
  readonly leafPteWrites: number;
  readonly iotlbFlushes: number;
  readonly bounceBytes: number;
}

/** sg vs Linux 7.1 vs physr on the same maps (DesignComparison in src/sim/designs.ts). */
export interface DesignComparisonJson {
  readonly designs: readonly string[];
  readonly steps: number;
  readonly totals: readonly DesignTotalsJson[];
  readonly ratios: readonly { readonly from: string; readonly to: string; readonly metric: string }[];
  readonly scenarios: readonly string[];
  readonly leftOut: readonly {
    readonly scenario: string;
    readonly step: number;
    readonly op: string;
    readonly design: string;
    readonly why: string;
  }[];
  /** Steps counted once: the same work as an earlier step under every design (absent in older reports). */
  readonly repeats?: readonly {
    readonly scenario: string;
    readonly step: number;
    readonly op: string;
    readonly of: number;
  }[];
}

/** A comparison row (cost or event) of a scenario or the suite. */
export type RowJson = RowWords;

export interface ScenarioJson {
  readonly name: string;
  readonly description?: string;
  readonly file: string;
  readonly platform: string;
  readonly seed: string;
  readonly iommuMode: string;
  readonly status: 'passed' | 'failed' | 'error';
  readonly failure?: {
    readonly step: number;
    readonly op: string;
    readonly line?: number;
    readonly reason: string;
  };
  readonly steps: readonly StepJson[];
  readonly designs: readonly ('physr' | 'sg')[];
  readonly comparison: readonly RowJson[];
  readonly designComparison?: DesignComparisonJson;
}

export interface DesignTimingJson {
  readonly samples: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface RunJson {
  readonly scenarios: readonly ScenarioJson[];
  readonly summary: SummaryWords;
  readonly comparison: readonly RowJson[];
  readonly comparedScenarios: readonly string[];
  /** Absent in documents made before the three-way comparison. */
  readonly designComparison?: DesignComparisonJson;
  readonly timing?: {
    readonly repetitions: number;
    readonly steps: readonly string[];
    readonly physr: DesignTimingJson;
    readonly sg: DesignTimingJson;
  };
}

export interface BarJson {
  readonly index: number;
  readonly cpuAddress: string;
  readonly size: string;
  readonly prefetchable?: boolean;
  readonly is64?: boolean;
  readonly io?: boolean;
}

export interface FunctionJson {
  readonly bdf: string;
  readonly kind: string;
  readonly name?: string | null;
  readonly parent: string | null;
  readonly hostBridge: string;
  readonly bars: readonly BarJson[];
  readonly acs: { readonly kind: string; readonly controlFlags?: string };
  readonly derivedIommuGroup?: number | null;
  readonly reportedIommuGroup?: number | null;
}

export interface TopologyJson {
  readonly hostBridges: readonly { readonly id: string; readonly numaNode?: number | null }[];
  readonly functions: readonly FunctionJson[];
}

export interface P2pDecisionJson {
  readonly provider: string;
  readonly client: string;
  readonly mapType: string;
  readonly distance: number;
  readonly path: readonly { readonly bdf: string; readonly role: string; readonly acsRedirect: boolean }[];
  readonly reason: string;
}

export interface TopologySection {
  readonly source: string;
  readonly topology: TopologyJson;
  /** Device labels (gpu0 → BDF) of a built-in platform. */
  readonly labels?: Readonly<Record<string, string>>;
  /** The decision for each ordered pair of endpoints (provider, client). */
  readonly p2p?: readonly P2pDecisionJson[];
}

export interface P2pMatrixSection {
  readonly source?: string;
  readonly decisions: readonly P2pDecisionJson[];
}

export interface TraceEventJson {
  /** When (any unit the trace uses; shown as is). */
  readonly time?: number | string;
  /** map, dma, unmap, flush, fault, revoke or another word. */
  readonly kind: string;
  readonly text: string;
}

/** One row of a trace's "what physr would change": the traced (legacy) design against physr. */
export interface TraceComparisonRowJson {
  readonly metric: string;
  readonly legacy: number;
  readonly physr: number;
  /** In words, which design the numbers favour (lower is better). */
  readonly verdict: string;
}

export interface TraceComparisonJson {
  /** What was replayed where, e.g. "x86-2s (IOMMU lazy) as device 0000:03:00.0". */
  readonly setting: string;
  readonly rows: readonly TraceComparisonRowJson[];
  /** Caveats (truncated lists, relocated ranges) as the text report words them. */
  readonly notes?: readonly string[];
}

export interface TraceSection {
  readonly source?: string;
  readonly events: readonly TraceEventJson[];
  readonly comparison?: TraceComparisonJson;
}

/**
 * Simple fences and a reservation object, after drivers/dma-buf/dma-fence.c and dma-resv.c.
 *
 * A fence stands for one piece of DMA in flight; it signals once, when that DMA completes. A
 * reservation object (one per dma-buf) holds the fences of everyone using the buffer, each with a
 * usage class. The classes are ordered (include/linux/dma-resv.h enum dma_resv_usage): waiting for a
 * class waits for every fence of that class and of the classes before it, so waiting with
 * 'bookkeep' waits for all of them — what an exporter does before it lets its memory go.
 *
 * The model runs in one thread, so "waiting" means: every unsignaled fence is completed (its DMA is
 * allowed to finish, its completion callback runs) in the order it was added, and the wait reports
 * exactly which fences it had to wait for.
 */
import { fail } from '../core/index.ts';

/** dma_resv_usage, in the kernel's order (a wait for one class includes every class before it). */
export const DMA_RESV_USAGES = ['kernel', 'write', 'read', 'bookkeep'] as const;
export type DmaResvUsage = (typeof DMA_RESV_USAGES)[number];

let nextFenceContext = 1;

/** One unit of DMA in flight (struct dma_fence: a context, a seqno, a signaled bit). */
export class DmaFence {
  readonly context: number;
  readonly seqno: number;
  /** Who set it and for what, for reports (e.g. `mlx5 RDMA WRITE`). */
  readonly label: string;
  private signaledFlag = false;
  private readonly onSignal: (() => void) | undefined;

  constructor(label: string, options: { context?: number; seqno?: number; onSignal?: () => void } = {}) {
    this.label = label;
    this.context = options.context ?? nextFenceContext++;
    this.seqno = options.seqno ?? 1;
    this.onSignal = options.onSignal;
  }

  get signaled(): boolean {
    return this.signaledFlag;
  }

  /** dma_fence_signal: the DMA finished. Signalling twice is refused as the kernel does (EINVAL). */
  signal(): void {
    if (this.signaledFlag) fail('EINVAL', `fence ${this.describe()} is already signaled`);
    this.signaledFlag = true;
    this.onSignal?.();
  }

  describe(): string {
    return `${this.label} (context ${this.context}, seqno ${this.seqno})`;
  }
}

/** What a wait had to wait for. */
export interface FenceWaitReport {
  /** Fences that were still running when the wait began, in the order they completed. */
  readonly waitedFor: readonly string[];
  /** Fences that had already signaled. */
  readonly alreadySignaled: number;
}

interface ResvEntry {
  readonly fence: DmaFence;
  readonly usage: DmaResvUsage;
}

/** struct dma_resv: the fences of one buffer, by usage. */
export class DmaResv {
  private entries: ResvEntry[] = [];

  /**
   * dma_resv_add_fence: a newer fence of the same context replaces the older one (a context's fences
   * signal in order, so only the latest matters), otherwise the fence is appended.
   */
  addFence(fence: DmaFence, usage: DmaResvUsage): void {
    const i = this.entries.findIndex((e) => e.fence.context === fence.context);
    if (i >= 0 && this.entries[i]!.fence.seqno <= fence.seqno) {
      this.entries[i] = { fence, usage };
      return;
    }
    this.entries.push({ fence, usage });
  }

  /** Fences of `usage` and every class before it (dma_resv_iter with that usage). */
  fences(usage: DmaResvUsage = 'bookkeep'): DmaFence[] {
    const limit = DMA_RESV_USAGES.indexOf(usage);
    return this.entries.filter((e) => DMA_RESV_USAGES.indexOf(e.usage) <= limit).map((e) => e.fence);
  }

  /** dma_resv_test_signaled: true when nothing of this usage is still running. */
  testSignaled(usage: DmaResvUsage = 'bookkeep'): boolean {
    return this.fences(usage).every((f) => f.signaled);
  }

  /** dma_resv_wait_timeout without a timeout: completes every running fence of `usage`, in order. */
  wait(usage: DmaResvUsage = 'bookkeep'): FenceWaitReport {
    const waitedFor: string[] = [];
    let alreadySignaled = 0;
    for (const fence of this.fences(usage)) {
      if (fence.signaled) {
        alreadySignaled++;
        continue;
      }
      fence.signal();
      waitedFor.push(fence.describe());
    }
    // Signaled fences are dropped as dma_resv_prune would.
    this.entries = this.entries.filter((e) => !e.fence.signaled);
    return { waitedFor, alreadySignaled };
  }

  get count(): number {
    return this.entries.length;
  }
}

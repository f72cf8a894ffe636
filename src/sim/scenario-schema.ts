/**
 * The scenario format, as zod schemas. A scenario is YAML (see scenarios/README.md):
 *
 *   name: nvme-fragmented
 *   platform: x86-2s            # or { file: machine.yaml } or { sysfs: ./capture }
 *   seed: 7
 *   iommu: { mode: lazy }
 *   steps:
 *     - allocate: { name: buf, size: 2M, backing: anon, fragmented: true }
 *     - map: { name: m, buffer: buf, device: nvme0, via: physr }
 *     - dma-read: { device: nvme0, buffer: m, length: 4K, expect: { bytes: seq } }
 *
 * Each step is a map with one key, the step kind; its value holds the step's fields and an optional
 * `expect` (which may also sit beside the kind, as `- map: {…}` then `  expect: {…}`). YAML integers arrive as bigint (the loader parses with intAsBigInt), so every
 * numeric field takes a bigint, and sizes/addresses also take strings (`2M`, `0xfee00000`).
 */
import { z } from 'zod';
import { ERRNO, type Errno, fail, isPhysrError, parseAddress, parseSize } from '../core/index.ts';
import { type Pattern, parsePattern } from './pattern.ts';

/** Runs a core parser inside zod, turning its PhysrError into a zod issue with the same reason. */
function parsedBy<T>(parse: (value: string | bigint) => T, expected: string) {
  return z.union([z.string(), z.bigint()], { error: `expected ${expected}` }).transform((value, ctx): T => {
    try {
      return parse(value);
    } catch (error) {
      if (!isPhysrError(error)) throw error;
      ctx.addIssue({ code: 'custom', message: error.reason });
      return z.NEVER;
    }
  });
}

/** A seed: any 64-bit integer, decimal or `0x…`. */
function parseSeed(value: string | bigint): bigint {
  if (typeof value === 'string' && !/^\s*(0x[0-9a-f_]+|[0-9][0-9_]*)\s*$/i.test(value)) {
    fail('EINVAL', `seed "${value}" is not an integer (e.g. 7 or 0x1234)`);
  }
  return parseAddress(value, 'seed');
}

/** A byte count: 4096, 0x1000, "4K", "2M", "1G", "2MiB". */
export const sizeSchema = parsedBy((v) => parseSize(v), 'a size such as 4096, 4K, 2M or 0x1000').meta({
  description: 'A byte count: an integer, or a string such as "4K", "2M", "1G", "0x1000".',
});

/** A non-zero byte count. */
export const lengthSchema = sizeSchema.refine((v) => v > 0n, 'a length must not be 0');

/** A 64-bit address or mask: an integer or a string such as "0xfee00000". */
export const addressSchema = parsedBy((v) => parseAddress(v), 'an address such as 0xfee00000').meta({
  description: 'A 64-bit address: an integer, or a string such as "0xfee00000".',
});

/** A small integer (indexes, NUMA nodes, BAR numbers). */
function smallInt(min: number, max: number) {
  return z
    .bigint({ error: `expected an integer ${min}..${max}` })
    .refine((v) => v >= BigInt(min) && v <= BigInt(max), `must be an integer ${min}..${max}`)
    .transform(Number);
}

/** The name a step gives an object (buffer, mapping, dma-buf…) and later steps refer to. */
export const nameSchema = z
  .string({ error: 'expected a name (letters, digits, _ . -)' })
  .regex(/^[A-Za-z_][\w.-]*$/, 'a name is letters, digits, _ . - and starts with a letter or _');

export const patternSchema = z
  .string({ error: 'expected a pattern such as seq, fill:0xa5, random:42' })
  .transform((text, ctx): Pattern => {
    try {
      return parsePattern(text);
    } catch (error) {
      if (!isPhysrError(error)) throw error;
      ctx.addIssue({ code: 'custom', message: error.reason });
      return z.NEVER;
    }
  })
  .meta({
    description: 'fill:BYTE, zero, seq, seq:N or random:SEED; a function of the offset in the buffer.',
  });

const ERRNO_NAMES = Object.keys(ERRNO) as [Errno, ...Errno[]];

/** A counter expectation: an exact value or bounds. */
export const counterExpectationSchema = z.union(
  [
    z.bigint().transform((v) => ({ min: Number(v), max: Number(v) })),
    z.strictObject({ min: z.bigint().optional(), max: z.bigint().optional() }).transform((v) => ({
      min: v.min === undefined ? undefined : Number(v.min),
      max: v.max === undefined ? undefined : Number(v.max),
    })),
  ],
  { error: 'expected a counter value (an integer) or { min, max }' },
);
export type CounterExpectation = z.output<typeof counterExpectationSchema>;

const COUNTER_NAME_HINT = 'a counter name is piece.name, e.g. iommu.pte_writes or iommu.leaf_pte_writes.2M';
const countersSchema = z.record(
  z.string().regex(/^[a-z0-9_]+\.[A-Za-z0-9_.]+$/, COUNTER_NAME_HINT),
  counterExpectationSchema,
  // zod reports a bad key as "Invalid key in record"; say what a key must look like instead.
  { error: (issue) => (issue.code === 'invalid_key' ? COUNTER_NAME_HINT : undefined) },
);

export const expectSchema = z
  .strictObject({
    bytes: patternSchema.optional().meta({ description: 'The bytes read equal this pattern.' }),
    fault: z.boolean().optional().meta({ description: 'The access faults (true) or does not (false).' }),
    error: z
      .enum(ERRNO_NAMES, { error: `expected an errno name: ${ERRNO_NAMES.join(', ')}` })
      .optional()
      .meta({ description: 'The step is refused with this errno.' }),
    counters: countersSchema
      .optional()
      .meta({ description: 'Counters this step moves, by exact value or {min,max}.' }),
  })
  .meta({ description: 'What the step must produce; a step without expect must simply succeed.' });
export type Expectation = z.output<typeof expectSchema>;

const via = z.enum(['physr', 'sg']).default('physr').meta({
  description: 'physr: the proposed range-list path; sg: the legacy scatterlist path, for comparison.',
});
const direction = z.enum(['to-device', 'from-device', 'bidirectional']).default('bidirectional');
const offset = sizeSchema.default(0n);
const expect = expectSchema.optional();

/** Every step kind and its fields. Executors are registered per kind (see registry.ts). */
export const STEP_BODIES = {
  allocate: z.strictObject({
    name: nameSchema,
    size: lengthSchema,
    backing: z.enum(['anon', 'thp', 'hugetlb-2M', 'hugetlb-1G']).default('anon'),
    fragmented: z.boolean().default(false).meta({ description: 'Back the buffer with scattered folios.' }),
    node: smallInt(0, 63).optional(),
    expect,
  }),
  pin: z.strictObject({
    name: nameSchema.optional(),
    buffer: nameSchema,
    offset,
    length: lengthSchema.optional(),
    via,
    longterm: z.boolean().default(true),
    expect,
  }),
  export: z.strictObject({
    name: nameSchema,
    device: nameSchema,
    bar: smallInt(0, 5),
    offset,
    length: lengthSchema.optional(),
    expect,
  }),
  import: z.strictObject({
    name: nameSchema,
    dmabuf: nameSchema,
    into: z.enum(['iommufd', 'rdma-mr']),
    device: nameSchema,
    iova: addressSchema.optional(),
    expect,
  }),
  map: z.strictObject({
    name: nameSchema,
    buffer: nameSchema,
    device: nameSchema,
    via,
    direction,
    layout: z.enum(['packed', 'aligned']).default('packed').meta({
      description:
        'physr IOVA layout: packed (ranges back to back, as dma_iova_link users do) or aligned (each range where its IOVA can use its largest page, leaving gaps).',
    }),
    offset,
    length: lengthSchema.optional(),
    expect,
  }),
  'dma-write': z.strictObject({
    device: nameSchema,
    buffer: nameSchema,
    offset,
    length: lengthSchema,
    pattern: patternSchema,
    expect,
  }),
  'dma-read': z.strictObject({
    device: nameSchema,
    buffer: nameSchema,
    offset,
    length: lengthSchema,
    expect,
  }),
  'cpu-write': z.strictObject({
    buffer: nameSchema,
    offset,
    length: lengthSchema,
    pattern: patternSchema,
    expect,
  }),
  'cpu-read': z.strictObject({ buffer: nameSchema, offset, length: lengthSchema, expect }),
  check: z.strictObject({ buffer: nameSchema, offset, length: lengthSchema, pattern: patternSchema, expect }),
  unmap: z.strictObject({ mapping: nameSchema, expect }),
  free: z.strictObject({ buffer: nameSchema, expect }).meta({
    description:
      "munmap of a whole buffer: each page loses the mapping's reference and goes back to the buddy allocator, unless a pin still holds it (its last unpin frees it then).",
  }),
  revoke: z.strictObject({ dmabuf: nameSchema, expect }),
  reset: z.strictObject({ device: nameSchema, expect }),
  flush: z.strictObject({ device: nameSchema.optional(), expect }),
  probe: z
    .strictObject({
      device: nameSchema,
      dmaMask: smallInt(1, 64).optional().meta({ description: 'dma_set_mask in bits (e.g. 32).' }),
      maxSegmentSize: lengthSchema.optional().meta({ description: 'dma_set_max_seg_size.' }),
      segmentBoundary: addressSchema.optional().meta({ description: 'dma_set_seg_boundary mask.' }),
      untrusted: z.boolean().optional().meta({ description: 'An external-facing (untrusted) device.' }),
      passthrough: z
        .boolean()
        .optional()
        .meta({ description: 'Identity default domain for its IOMMU group (iommu.passthrough=1).' }),
      expect,
    })
    .meta({ description: "The driver's probe: the device's DMA properties, before its first DMA." }),
  sync: z
    .strictObject({
      mapping: nameSchema,
      for: z.enum(['cpu', 'device']).default('cpu'),
      expect,
    })
    .meta({ description: 'dma_sync_*_for_cpu / _for_device of a whole mapping (swiotlb copies here).' }),
  'register-mr': z
    .strictObject({
      name: nameSchema,
      buffer: nameSchema,
      device: nameSchema,
      via,
      iova: addressSchema.optional(),
      expect,
    })
    .meta({ description: 'ib_reg_user_mr over a buffer: pin, map, best page size, page list.' }),
  'expect-counters': z.strictObject({
    counters: countersSchema.meta({ description: 'Counter totals since the scenario began.' }),
  }),
  'build-list': z.strictObject({
    name: nameSchema,
    ranges: z
      .array(z.strictObject({ addr: addressSchema, len: lengthSchema }), {
        error: 'expected a list of { addr, len }',
      })
      .min(1, 'a list needs at least one range'),
    maxSegmentSize: lengthSchema.optional(),
    segmentBoundary: addressSchema.optional().meta({ description: 'Boundary mask, e.g. 0xffffffff.' }),
    expect,
  }),
  'compare-metadata': z.strictObject({ list: nameSchema, expect }),
} as const;

export type StepKind = keyof typeof STEP_BODIES;
export const STEP_KINDS = Object.keys(STEP_BODIES) as StepKind[];
export type StepBody<K extends StepKind> = z.output<(typeof STEP_BODIES)[K]>;

export function isStepKind(kind: string): kind is StepKind {
  return Object.hasOwn(STEP_BODIES, kind);
}

/** A validated step: its kind, fields, and where it was written. */
export type Step = {
  [K in StepKind]: {
    readonly kind: K;
    readonly body: StepBody<K>;
    /** 0-based position in `steps`. */
    readonly index: number;
    readonly line?: number;
  };
}[StepKind];

/**
 * One step as written: a single-key map (the kind), optionally with `expect` beside the kind instead
 * of inside it. The kind is checked first so that an unknown kind is one clear error.
 */
const stepSchema = z
  .record(z.string(), z.unknown(), {
    error: 'a step is a map with one key, the step kind (e.g. "- map: {…}")',
  })
  .transform((raw, ctx) => {
    const keys = Object.keys(raw).filter((k) => k !== 'expect');
    if (keys.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          keys.length === 0
            ? 'a step needs a kind, e.g. "- allocate: {…}"'
            : `a step has exactly one kind, found ${keys.join(', ')} (indent the fields under the kind)`,
        ...(keys.length > 1 ? { path: [keys[1]!], params: { atKey: true } } : {}),
      });
      return z.NEVER;
    }
    const kind = keys[0]!;
    if (!isStepKind(kind)) {
      ctx.addIssue({
        code: 'custom',
        message: `unknown step "${kind}" (known: ${STEP_KINDS.join(', ')})`,
        path: [kind],
        params: { atKey: true },
      });
      return z.NEVER;
    }
    const fields = raw[kind] ?? {};
    const sibling = raw.expect;
    if (sibling !== undefined && typeof fields === 'object' && fields !== null && 'expect' in fields) {
      ctx.addIssue({
        code: 'custom',
        message: 'expect is given twice',
        path: ['expect'],
        params: { atKey: true },
      });
      return z.NEVER;
    }
    if (sibling !== undefined) {
      const checked = expectSchema.safeParse(sibling);
      if (!checked.success) {
        for (const issue of checked.error.issues) {
          ctx.addIssue({ ...issueForwarded(issue), path: ['expect', ...issue.path] });
        }
        return z.NEVER;
      }
    }
    const merged =
      sibling !== undefined && typeof fields === 'object' && fields !== null
        ? { ...fields, expect: sibling }
        : fields;
    const parsed = STEP_BODIES[kind].safeParse(merged);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        ctx.addIssue({ ...issueForwarded(issue), path: [kind, ...issue.path] });
      }
      return z.NEVER;
    }
    return { kind, body: parsed.data };
  });

/** Keeps what locating needs from a nested issue (message, unknown keys). */
function issueForwarded(issue: z.core.$ZodIssue): {
  code: 'custom';
  message: string;
  params?: Record<string, unknown>;
} {
  if (issue.code === 'unrecognized_keys') {
    return { code: 'custom', message: issue.message, params: { unknownKeys: issue.keys } };
  }
  return { code: 'custom', message: issue.message };
}

export const platformSchema = z
  .union(
    [
      z.string().meta({ description: 'A built-in platform (physr list shows them).' }),
      z.strictObject({ file: z.string().meta({ description: 'A platform description file.' }) }),
      z.strictObject({ sysfs: z.string().meta({ description: 'A captured sysfs tree (directory).' }) }),
      z.strictObject({
        builtin: z.string().meta({ description: 'A built-in platform (physr list shows them).' }),
        cmdline: z.string().optional().meta({
          description:
            'The kernel command line it boots with, e.g. "pci=disable_acs_redir=0000:02:00.0;0000:02:01.0" to let a switch route P2P (Linux turns ACS redirect on wherever an IOMMU is in use).',
        }),
      }),
    ],
    {
      error:
        'expected a built-in platform name, { builtin: NAME, cmdline: PARAMS }, { file: PATH } or { sysfs: DIR }',
    },
  )
  .meta({ description: 'The machine the scenario runs on.' });
export type PlatformSpec = z.output<typeof platformSchema>;

export const iommuOptionsSchema = z
  .strictObject({
    mode: z.enum(['strict', 'lazy']).optional().meta({
      description: 'IOTLB invalidation: strict flushes on every unmap; lazy batches (flush queue).',
    }),
  })
  .meta({ description: 'IOMMU options; absent fields take the platform default.' });
export type IommuOptions = z.output<typeof iommuOptionsSchema>;

/**
 * The designs a scenario compares: today's scatterlist (sg), what Linux 7.1 does for each user
 * (linux-7.1), and the full proposal (physr).
 */
export const DESIGN_NAMES = ['sg', 'linux-7.1', 'physr'] as const;
export type DesignName = (typeof DESIGN_NAMES)[number];

export const designsSchema = z
  .array(z.enum(DESIGN_NAMES, { error: `expected a design: ${DESIGN_NAMES.join(', ')}` }), {
    error: 'expected a list of designs',
  })
  .min(1, 'name at least one design')
  .refine((list) => new Set(list).size === list.length, 'a design is named twice')
  .default([...DESIGN_NAMES])
  .meta({
    description:
      'Designs every buffer map also runs under, each on its own copy of the machine (default: all three). sg: scatterlist; linux-7.1: what Linux 7.1 does for that driver; physr: the proposal.',
  });

const scenarioFields = {
  name: nameSchema.meta({ description: 'The scenario name used in reports and by `physr run NAME`.' }),
  description: z.string().optional(),
  platform: platformSchema,
  seed: parsedBy(parseSeed, 'a seed (an integer)').default(0n),
  iommu: iommuOptionsSchema.default({}),
  designs: designsSchema,
};

/** The validating schema (steps checked kind first, for one clear error per mistake). */
export const scenarioSchema = z.strictObject({
  ...scenarioFields,
  steps: z
    .array(stepSchema, { error: 'expected a list of steps' })
    .min(1, 'a scenario needs at least one step'),
});

/** The same format written out per step kind, for the JSON Schema editors read. */
export const scenarioDocumentSchema = z
  .strictObject({
    ...scenarioFields,
    steps: z
      .array(
        z.union(
          STEP_KINDS.map((kind) =>
            z.strictObject({ [kind]: STEP_BODIES[kind], expect: expectSchema.optional() }),
          ),
        ),
      )
      .min(1),
  })
  .meta({
    title: 'physr scenario',
    description: 'A physr simulation scenario: a platform, a seed and steps.',
  });

export type ScenarioFields = Omit<z.output<typeof scenarioSchema>, 'steps'>;

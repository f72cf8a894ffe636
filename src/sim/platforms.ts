/**
 * The machines scenarios run on: built-in platforms by name (x86-2s, laptop, arm-server, amd-server),
 * optionally booted with a kernel command line (`platform: { builtin: x86-2s, cmdline: ... }`), a captured sysfs tree (`platform: { sysfs: DIR }`) and a platform file
 * (`platform: { file: PATH }`, YAML or JSON, see scenarios/README.md). Each gives the platform
 * layer's model plus device labels (gpu0, nic0, nvme0…) that steps may use instead of BDFs.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { fail, formatHex, isPhysrError, parseSize, readInputText } from '../core/index.ts';
import {
  acsRedirTargets,
  type Bdf,
  builtinPlatform,
  builtinTopology,
  createPlatformModel,
  defaultIommuKind,
  deviceLabels,
  formatDeviceLabels,
  type IommuKind,
  importSysfs,
  type PciTopology,
  type PlatformModel,
  parseIomem,
  parseKernelCmdline,
  type RamLayoutEntry,
  resolveDevice as resolveTopologyDevice,
} from '../platform/index.ts';
import {
  type PlatformInstance,
  type PlatformOptions,
  registerPlatform,
  registerPlatformLoader,
  type SimPlatform,
} from './registry.ts';
import { errorAtPath, parseYamlInput } from './yaml-input.ts';

const GiB = 1n << 30n;
const MiB = 1n << 20n;

/** A device named by label or BDF (`03:00.0` or `0000:03:00.0`); ENODEV with the known labels. */
export function resolveDevice(platform: SimPlatform, name: string): Bdf {
  return resolveTopologyDevice(platform.model.topology, name);
}

/**
 * The kernel's default IOTLB mode: lazy on x86 (CONFIG_IOMMU_DEFAULT_DMA_LAZY is the default there),
 * strict elsewhere (drivers/iommu/Kconfig, IOMMU_DEFAULT_DMA_STRICT).
 */
function defaultMode(topology: PciTopology): 'strict' | 'lazy' {
  return topology.cpu.vendor === 'intel' || topology.cpu.vendor === 'amd' ? 'lazy' : 'strict';
}

function instance(
  name: string,
  description: string,
  model: PlatformModel,
  assumptions: readonly string[],
): PlatformInstance {
  const labels = deviceLabels(model.topology);
  return {
    name,
    description,
    defaultIommuMode: defaultMode(model.topology),
    machine: { model, labels, assumptions },
  };
}

/** Built-in platforms: our names for the platform layer's built-in machines. */
export const BUILTIN_PLATFORMS: readonly { name: string; builtin: string; summary: string }[] = [
  {
    name: 'x86-2s',
    builtin: 'two-socket-server',
    summary:
      '2-socket Ice Lake, VT-d (ACS redirect on, as Linux boots); PCIe switch with GPU + RDMA NIC, NVMe on a root port, NIC on socket 1',
  },
  {
    name: 'laptop',
    builtin: 'laptop',
    summary: 'Tiger Lake laptop, VT-d; iGPU, NVMe, Wi-Fi; host bridge not allowlisted: no P2P',
  },
  {
    name: 'arm-server',
    builtin: 'arm-server',
    summary: 'Ampere-style ARM server with SMMUv3; two root complexes, high-mapped windows',
  },
  {
    name: 'amd-server',
    builtin: 'amd-server',
    summary: 'AMD EPYC Zen 3 with AMD-Vi; host-bridge P2P allowed by the CPU rule',
  },
];

/** Label list of a built-in platform (for descriptions and `physr list`). */
function builtinLabels(builtin: string): string {
  const topology = builtinTopology(builtin)?.build();
  return topology === undefined ? '' : formatDeviceLabels(topology);
}

/** RAM the capture's /proc/iomem lists, or undefined when it has none (or hides addresses). */
function ramFromIomem(dir: string): RamLayoutEntry[] | undefined {
  for (const candidate of [join(dir, 'proc', 'iomem'), join(dir, 'iomem')]) {
    if (!existsSync(candidate)) continue;
    const imported = parseIomem(readInputText(candidate, 'iomem capture'), candidate);
    if (imported.addressesHidden) return undefined;
    const ram: RamLayoutEntry[] = [];
    for (const region of imported.map.byKind('ram')) {
      // Whole pages only, as memblock keeps them.
      const start = (region.start + 0xfffn) & -0x1000n;
      const end = (region.last + 1n) & -0x1000n;
      if (end > start) ram.push({ start, size: end - start, node: region.node ?? 0 });
    }
    return ram.length === 0 ? undefined : ram;
  }
  return undefined;
}

/** The default RAM when a capture gives none: 1 MiB..2 GiB and 4..20 GiB on node 0, minus BARs. */
function defaultRam(topology: PciTopology): RamLayoutEntry[] {
  const bars = [...topology.functions.values()].flatMap((f) =>
    f.bars.filter((b) => !b.io && b.size > 0n).map((b) => [b.cpuAddress, b.cpuAddress + b.size] as const),
  );
  const out: RamLayoutEntry[] = [];
  for (const [start, end] of [
    [MiB, 2n * GiB],
    [4n * GiB, 20n * GiB],
  ] as const) {
    const clash = bars.some(([s, e]) => s < end && e > start);
    if (!clash) out.push({ start, size: end - start, node: 0 });
  }
  if (out.length === 0) fail('EINVAL', 'the capture has BARs where the default RAM layout would go');
  return out;
}

/** A Machine model from a captured sysfs tree; RAM from its /proc/iomem when present. */
export function loadSysfsPlatform(
  dir: string,
  options: PlatformOptions,
  overrides: { ram?: RamLayoutEntry[]; name?: string; iommu?: IommuKind; swiotlb?: bigint } = {},
): PlatformInstance {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail('ENOENT', `no sysfs capture directory ${dir}`);
  const imported = importSysfs(dir);
  const { topology } = imported;
  const assumptions: string[] = [];
  let ram = overrides.ram;
  if (ram === undefined) {
    ram = ramFromIomem(dir);
    if (ram === undefined) {
      ram = defaultRam(topology);
      assumptions.push(
        `no readable /proc/iomem in the capture: RAM assumed at ${ram.map((r) => `${formatHex(r.start)}+${formatHex(r.size)}`).join(', ')} on node 0`,
      );
    }
  }
  const iommu = overrides.iommu ?? defaultIommuKind(topology);
  if (overrides.iommu === undefined) assumptions.push(`IOMMU assumed from the CPU vendor: ${iommu}`);
  if (imported.notes.length > 0) assumptions.push(`${imported.notes.length} unknowns noted by the import`);
  const name = overrides.name ?? `sysfs:${dir}`;
  const model = createPlatformModel({
    topology,
    ram,
    name,
    iommu,
    seed: options.seed,
    metrics: options.metrics,
    ...(overrides.swiotlb === undefined ? {} : { swiotlbBytes: overrides.swiotlb }),
  });
  return instance(name, `captured sysfs tree ${dir}`, model, assumptions);
}

const sizeField = z.union([z.string(), z.number(), z.bigint()]).transform((v, ctx) => {
  try {
    return parseSize(typeof v === 'number' ? BigInt(v) : v);
  } catch (error) {
    if (!isPhysrError(error)) throw error;
    ctx.addIssue({ code: 'custom', message: error.reason });
    return z.NEVER;
  }
});

/** The platform file: a base topology (built-in name or sysfs capture) plus optional RAM and options. */
const platformFileSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  topology: z.union([z.string(), z.strictObject({ sysfs: z.string() })], {
    error: 'topology is a built-in name (two-socket-server, laptop…) or { sysfs: DIR }',
  }),
  ram: z
    .array(z.strictObject({ start: sizeField, size: sizeField, node: z.number().int().min(0).default(0) }))
    .min(1)
    .optional(),
  iommu: z.enum(['intel-vt-d', 'amd-vi', 'arm-smmu-v3', 'none']).optional(),
  swiotlb: sizeField.optional(),
});

/** A platform file's topology name: one of ours (x86-2s…) or the platform layer's own. */
function builtinNameOf(topology: string): string {
  return BUILTIN_PLATFORMS.find((p) => p.name === topology)?.builtin ?? topology;
}

/** A platform file (YAML or JSON); see scenarios/README.md for the format. */
export function loadPlatformFile(path: string, options: PlatformOptions): PlatformInstance {
  const input = parseYamlInput(readInputText(path, 'platform file'), path);
  const parsed = platformFileSchema.safeParse(input.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
    throw errorAtPath(input, field, 'EINVAL', issue.message.replace(/^Invalid input: /, ''));
  }
  const spec = parsed.data;
  const topology = spec.topology;
  if (typeof topology === 'string' && builtinTopology(builtinNameOf(topology)) === undefined) {
    throw errorAtPath(input, ['topology'], 'ENOENT', `no built-in topology "${topology}"`);
  }
  // A refusal from the model points at the field it most likely came from: the capture, else the RAM.
  const field = typeof topology !== 'string' || spec.ram === undefined ? ['topology'] : ['ram'];
  try {
    return platformFromSpec(path, spec, options);
  } catch (error) {
    if (!isPhysrError(error) || error.location !== undefined) throw error;
    throw errorAtPath(input, field, error.errno, error.reason);
  }
}

function platformFromSpec(
  path: string,
  spec: z.output<typeof platformFileSchema>,
  options: PlatformOptions,
): PlatformInstance {
  const ram = spec.ram?.map((r) => ({ start: r.start, size: r.size, node: r.node }));
  if (typeof spec.topology !== 'string') {
    const dir = isAbsolute(spec.topology.sysfs)
      ? spec.topology.sysfs
      : resolve(dirname(path), spec.topology.sysfs);
    return loadSysfsPlatform(dir, options, {
      ...(ram === undefined ? {} : { ram }),
      ...(spec.name === undefined ? {} : { name: spec.name }),
      ...(spec.iommu === undefined ? {} : { iommu: spec.iommu }),
      ...(spec.swiotlb === undefined ? {} : { swiotlb: spec.swiotlb }),
    });
  }
  const builtinName = builtinNameOf(spec.topology);
  const builtin = builtinTopology(builtinName);
  if (builtin === undefined) fail('ENOENT', `no built-in topology "${spec.topology}"`);
  const name = spec.name ?? `file:${path}`;
  const model =
    ram === undefined && spec.iommu === undefined && spec.swiotlb === undefined
      ? builtinPlatform(builtinName, { seed: options.seed, metrics: options.metrics })
      : createPlatformModel({
          topology: builtin.build(),
          ram: ram ?? defaultRam(builtin.build()),
          name,
          iommu: spec.iommu ?? builtin.iommu,
          seed: options.seed,
          metrics: options.metrics,
          ...(spec.swiotlb === undefined ? {} : { swiotlbBytes: spec.swiotlb }),
        });
  return instance(name, spec.description ?? `platform file ${path}`, model, []);
}

let registered = false;

/** Registers the built-in platforms and the file/sysfs loaders (once). */
export function registerPlatforms(): void {
  if (registered) return;
  registered = true;
  for (const p of BUILTIN_PLATFORMS) {
    const labels = builtinLabels(p.builtin);
    registerPlatform(p.name, {
      description: `${p.summary}. Devices: ${labels}`,
      create: (options) => {
        const model = builtinPlatform(p.builtin, {
          seed: options.seed,
          metrics: options.metrics,
          ...(options.cmdline === undefined ? {} : { cmdline: options.cmdline }),
        });
        if (options.cmdline === undefined) return instance(p.name, p.summary, model, []);
        const matches = parseKernelCmdline(options.cmdline).disableAcsRedir ?? [];
        const targets = acsRedirTargets(model.topology, matches);
        // The report names the platform with its command line, so a reader sees the kernel it models.
        return instance(`${p.name} ${options.cmdline.trim()}`, p.summary, model, [
          `booted with ${options.cmdline.trim()}: ACS P2P redirect cleared on ${targets.length === 0 ? 'no function (nothing matched)' : targets.join(', ')}`,
        ]);
      },
    });
  }
  registerPlatformLoader('sysfs', (path, options) => loadSysfsPlatform(path, options));
  registerPlatformLoader('file', loadPlatformFile);
}

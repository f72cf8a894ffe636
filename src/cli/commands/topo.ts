/**
 * `physr topo`: the PCI tree of a real machine (live /sys, a sysfs capture, lspci text) or a
 * built-in platform, with BARs, ACS and IOMMU groups; unknowns are marked.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { checkOutputPath, fail, readInputText, writeOutputText } from '../../core/index.ts';
import {
  BUILTIN_TOPOLOGIES,
  type BuiltinTopology,
  builtinTopology,
  calcP2pDecision,
  deriveIommuGroups,
  deviceLabels,
  formatTopology,
  type ImportNote,
  type IommuGroups,
  type IommuPresence,
  importLspci,
  importSysfs,
  type PciTopology,
  p2pDecisionToJson,
  parseKernelCmdline,
  readIomem,
  summarizeImport,
  topologyToJson,
} from '../../platform/index.ts';
import { renderViewHtml, type TopologySection } from '../../view/index.ts';

export interface SourceOptions {
  readonly sysfs?: string;
  readonly lspciTree?: string;
  readonly lspciVerbose?: string;
  readonly builtin?: string;
  readonly cmdline?: string;
  readonly iomem?: string;
  readonly json?: boolean;
  readonly html?: string;
}

export interface LoadedTopology {
  readonly topology: PciTopology;
  readonly source: string;
  readonly notes: readonly ImportNote[];
  readonly live: boolean;
  /** Whether the machine runs with an IOMMU, as far as the source tells. */
  readonly iommu: IommuPresence;
}

function readTextFile(path: string, option: string): string {
  return readInputText(path, option);
}

/** The name `physr list`, scenarios and the README use for a built-in (x86-2s, not two-socket-server). */
function platformName(builtin: BuiltinTopology): string {
  return builtin.aliases[0] ?? builtin.name;
}

/** The topology the source options name (exactly one source; none means the live /sys). */
export function loadTopology(options: SourceOptions): LoadedTopology {
  const lspci = options.lspciTree !== undefined || options.lspciVerbose !== undefined;
  const chosen = [options.sysfs !== undefined, lspci, options.builtin !== undefined].filter(Boolean).length;
  if (chosen > 1) fail('EINVAL', 'choose one source: --sysfs, --lspci-tree/--lspci-verbose or --builtin');
  if (options.cmdline !== undefined && options.builtin === undefined)
    fail('EINVAL', '--cmdline applies to --builtin (a capture keeps the ACS control values it carries)', {
      field: '--cmdline',
    });
  if (options.builtin !== undefined) {
    const builtin = builtinTopology(options.builtin);
    if (builtin === undefined) {
      fail(
        'EINVAL',
        `no built-in platform "${options.builtin}" (have: ${BUILTIN_TOPOLOGIES.map(platformName).join(', ')}, as physr list shows them)`,
      );
    }
    const cmdline = options.cmdline?.trim();
    const boot = cmdline === undefined ? {} : parseKernelCmdline(cmdline, { field: '--cmdline' });
    return {
      topology: builtin.build(boot),
      source: `built-in ${platformName(builtin)}${cmdline === undefined ? '' : ` booted with ${cmdline}`}`,
      notes: [],
      live: false,
      iommu: builtin.iommu === 'none' ? 'absent' : 'present',
    };
  }
  if (lspci) {
    const imported = importLspci({
      ...(options.lspciTree === undefined
        ? {}
        : { tree: readTextFile(options.lspciTree, '--lspci-tree'), treeFile: options.lspciTree }),
      ...(options.lspciVerbose === undefined
        ? {}
        : {
            verbose: readTextFile(options.lspciVerbose, '--lspci-verbose'),
            verboseFile: options.lspciVerbose,
          }),
    });
    const grouped = [...imported.topology.functions.values()].some((f) => f.reportedIommuGroup !== undefined);
    // lspci prints "IOMMU group:" only when sysfs has groups, but older versions never print it.
    return { ...imported, live: false, iommu: grouped ? 'present' : 'unknown' };
  }
  const dir = options.sysfs ?? '/sys';
  const imported = importSysfs(dir, { live: options.sysfs === undefined });
  return { ...imported, live: options.sysfs === undefined, iommu: imported.iommu ?? 'unknown' };
}

/** Derived groups, none on a machine without an IOMMU (the kernel makes none there). */
export function safeGroups(loaded: LoadedTopology): IommuGroups | undefined {
  if (loaded.iommu === 'absent') return undefined;
  try {
    return deriveIommuGroups(loaded.topology);
  } catch {
    return undefined;
  }
}

export function addSourceOptions(command: Command): Command {
  return command
    .option('--sysfs <dir>', 'a sysfs tree (a directory like /sys, or a capture holding sys/ and proc/)')
    .option('--lspci-tree <file>', 'lspci -t, -tv or -tvnn output (alone, or with --lspci-verbose)')
    .option(
      '--lspci-verbose <file>',
      'lspci -nn -vvv output (alone, or with --lspci-tree); -vvv without -nn lacks IDs',
    )
    .option('--builtin <name>', `a built-in platform (${BUILTIN_TOPOLOGIES.map(platformName).join(', ')})`)
    .option(
      '--cmdline <params>',
      'boot the built-in platform with this kernel command line, e.g. "pci=disable_acs_redir=0000:02:00.0;0000:02:01.0"',
    )
    .option('--json', 'print JSON instead of text');
}

function iomemLines(
  path: string | undefined,
  live: boolean,
): { lines: string[]; json: Record<string, unknown> | null } {
  const file = path ?? (live ? '/proc/iomem' : undefined);
  if (file === undefined) return { lines: [], json: null };
  if (path === undefined && !existsSync(file)) return { lines: [`${file}: not present`], json: null };
  const iomem = readIomem(file);
  const bars = iomem.bars.length;
  const windows = iomem.pciWindows.length;
  const head = `${iomem.source}: ${iomem.tree.length} top-level entries, ${windows} PCI window${windows === 1 ? '' : 's'}, ${bars} BAR${bars === 1 ? '' : 's'}${iomem.addressesHidden ? ' (addresses hidden: not root)' : ''}`;
  return {
    lines: [head, ...iomem.notes.map((n) => `  note: ${n}`)],
    json: {
      source: iomem.source,
      windows,
      bars,
      addressesHidden: iomem.addressesHidden,
      notes: [...iomem.notes],
    },
  };
}

/** Endpoints the page's P2P matrix covers: enough for any single machine's GPUs, NICs and drives. */
export const P2P_PAGE_MAX_ENDPOINTS = 48;

/**
 * The topology section of the interactive page: the tree as `topo --json` prints it, the device
 * labels, and the kernel's P2P decision for every ordered pair of endpoints (the first
 * P2P_PAGE_MAX_ENDPOINTS of them).
 */
export function topologySection(loaded: LoadedTopology): TopologySection {
  const { topology } = loaded;
  const groups = safeGroups(loaded);
  const endpoints = [...topology.functions.values()]
    .filter((f) => f.kind === 'endpoint')
    .slice(0, P2P_PAGE_MAX_ENDPOINTS)
    .map((f) => f.bdf);
  const p2p = endpoints.flatMap((provider) =>
    endpoints
      .filter((client) => client !== provider)
      .map((client) => p2pDecisionToJson(calcP2pDecision(topology, provider, client))),
  );
  return JSON.parse(
    JSON.stringify({
      source: loaded.source,
      topology: topologyToJson(topology, { ...(groups ? { groups } : {}), notes: loaded.notes }),
      labels: Object.fromEntries(deviceLabels(topology)),
      p2p,
    }),
  ) as TopologySection;
}

export function register(program: Command): void {
  addSourceOptions(
    program
      .command('topo')
      .description(
        'print a PCI topology: host bridges, bridges, endpoints, BARs, ACS and IOMMU groups (default: this machine)',
      ),
  )
    .option(
      '--iomem <file>',
      'a /proc/iomem capture to summarise alongside (default with no source: /proc/iomem)',
    )
    .option('--html <file>', 'also write the interactive page (tree, P2P picker and matrix) to FILE')
    .action(async (options: SourceOptions) => {
      if (options.html !== undefined) checkOutputPath(options.html, '--html');
      const loaded = loadTopology(options);
      if (options.html !== undefined) {
        const page = await renderViewHtml({
          title: `physr topology: ${loaded.source}`,
          command: 'physr topo',
          topology: topologySection(loaded),
        });
        writeOutputText(options.html, page, '--html');
      }
      const groups = safeGroups(loaded);
      const iomem = iomemLines(options.iomem, loaded.live);
      if (options.json) {
        const json = topologyToJson(loaded.topology, { ...(groups ? { groups } : {}), notes: loaded.notes });
        process.stdout.write(
          `${JSON.stringify({ source: loaded.source, topology: json, iomem: iomem.json }, null, 2)}\n`,
        );
        return;
      }
      process.stdout.write(`${summarizeImport(loaded.topology, loaded.source, loaded.notes)}\n`);
      for (const line of iomem.lines) process.stdout.write(`${line}\n`);
      process.stdout.write(formatTopology(loaded.topology, groups ? { groups } : {}));
      const other = loaded.notes.filter((n) => n.what !== 'acs');
      if (other.length > 0) {
        process.stdout.write('notes:\n');
        for (const n of other)
          process.stdout.write(`  ${n.bdf === undefined ? '' : `${n.bdf}: `}${n.what}: ${n.why}\n`);
      }
    });
}

/**
 * `physr p2p PROVIDER CLIENT...`: the P2PDMA decision for each pair, as drivers/pci/p2pdma.c makes it;
 * `physr p2p --matrix`: every pair of DMA-capable endpoints, with reasons and remedies.
 */
import type { Command } from 'commander';
import { checkOutputPath, fail, readInputText, writeOutputText } from '../../core/index.ts';
import {
  calcP2pDecision,
  crossCheckNvidia,
  formatP2pDecision,
  formatP2pMatrix,
  type NvidiaCrossCheck,
  P2P_ENDPOINT_CLASSES,
  type P2pEndpointClass,
  type P2pMatrix,
  type PciTopology,
  p2pDecisionToJson,
  p2pMatrix,
  p2pMatrixToJson,
  parseCpuOption,
  parseNvidiaBusIds,
  parseNvidiaTopo,
  resolveDevice,
} from '../../platform/index.ts';
import { renderViewHtml } from '../../view/index.ts';
import {
  addSourceOptions,
  type LoadedTopology,
  loadTopology,
  P2P_PAGE_MAX_ENDPOINTS,
  type SourceOptions,
  topologySection,
} from './topo.ts';

interface P2pOptions extends SourceOptions {
  readonly matrix?: boolean;
  readonly class?: string;
  readonly devices?: string;
  readonly cpu?: string;
  readonly nvidiaTopo?: string;
  readonly nvidiaBusIds?: string;
  readonly html?: string;
}

/**
 * The interactive page for a matrix: the tree with its device picker, and the matrix as a grid of
 * the kernel's decision for every ordered pair of the matrix's devices (the first
 * P2P_PAGE_MAX_ENDPOINTS, as the page stays readable and small).
 */
async function matrixPage(loaded: LoadedTopology, topology: PciTopology, matrix: P2pMatrix): Promise<string> {
  const bdfs = matrix.endpoints.slice(0, P2P_PAGE_MAX_ENDPOINTS).map((e) => e.bdf);
  const decisions = bdfs.flatMap((provider) =>
    bdfs
      .filter((client) => client !== provider)
      .map((client) => p2pDecisionToJson(calcP2pDecision(topology, provider, client))),
  );
  return renderViewHtml({
    title: `physr p2p --matrix: ${loaded.source}`,
    command: 'physr p2p --matrix',
    topology: topologySection({ ...loaded, topology }),
    p2pMatrix: { source: loaded.source, decisions: JSON.parse(JSON.stringify(decisions)) },
  });
}

/** The `nvidia-smi topo -m` cross-check lines (text) for the matrix, when both files are given. */
function nvidiaCheck(matrix: P2pMatrix, options: P2pOptions): NvidiaCrossCheck[] | undefined {
  if (options.nvidiaTopo === undefined && options.nvidiaBusIds === undefined) return undefined;
  if (options.nvidiaTopo === undefined || options.nvidiaBusIds === undefined)
    fail(
      'EINVAL',
      '--nvidia-topo and --nvidia-bus-ids go together (nvidia-smi topo -m, and --query-gpu=index,pci.bus_id --format=csv)',
    );
  const topo = parseNvidiaTopo(readInputText(options.nvidiaTopo, '--nvidia-topo'), options.nvidiaTopo);
  const ids = parseNvidiaBusIds(
    readInputText(options.nvidiaBusIds, '--nvidia-bus-ids'),
    options.nvidiaBusIds,
  );
  return crossCheckNvidia(matrix, topo, ids);
}

function formatNvidiaCheck(checks: readonly NvidiaCrossCheck[]): string {
  const out = ['', 'nvidia-smi topo -m cross-check (GPU pairs):'];
  if (checks.length === 0)
    out.push('  no GPU pair both inputs know (one GPU, or bus IDs not in the topology)');
  for (const c of checks) {
    const mark = c.agrees === true ? 'agree' : c.agrees === 'not-pcie' ? 'NVLink' : 'DISAGREE';
    out.push(
      `  ${c.a} <-> ${c.b} (${c.bdfs[0]} <-> ${c.bdfs[1]}): nvidia ${c.nvidia}, kernel ${c.kernel}: ${mark}: ${c.why}`,
    );
  }
  return `${out.join('\n')}\n`;
}

function parseClasses(text: string): P2pEndpointClass[] {
  return text.split(',').map((c) => {
    const name = c.trim().toLowerCase();
    if (!(P2P_ENDPOINT_CLASSES as readonly string[]).includes(name))
      fail('EINVAL', `--class: "${c}" is not one of ${P2P_ENDPOINT_CLASSES.join(', ')}`, {
        field: '--class',
      });
    return name as P2pEndpointClass;
  });
}

/** The topology with the CPU `--cpu` names (for inputs that do not carry it). */
function withCpu(topology: PciTopology, text: string | undefined): PciTopology {
  if (text === undefined) return topology;
  const cpu = parseCpuOption(text);
  if (cpu === undefined)
    fail('EINVAL', `--cpu: "${text}" is not VENDOR[:FAMILY] (amd:0x19, intel:6, arm)`, { field: '--cpu' });
  return { ...topology, cpu };
}

export function register(program: Command): void {
  addSourceOptions(
    program
      .command('p2p')
      .description(
        'P2PDMA between a provider and clients (map type, distance, path with ACS marks, reason), or --matrix for every pair',
      )
      .argument('[provider]', 'the device whose BAR memory is shared (BDF or label)')
      .argument('[clients...]', 'the devices that would DMA to it (BDF or label)')
      .option(
        '--matrix',
        'every pair of GPUs, NICs, storage and accelerators: map type and distance, reasons, remedies',
      )
      .option('--class <list>', `with --matrix: only these classes (${P2P_ENDPOINT_CLASSES.join(',')})`)
      .option('--devices <list>', 'with --matrix: only these devices (comma-separated BDFs or labels)')
      .option('--cpu <vendor:family>', 'the CPU when the input does not show it: amd:0x19, intel:6, arm')
      .option(
        '--nvidia-topo <file>',
        'with --matrix: nvidia-smi topo -m output, to mark where NVIDIA and the kernel disagree',
      )
      .option(
        '--nvidia-bus-ids <file>',
        'nvidia-smi --query-gpu=index,pci.bus_id --format=csv output (GPU index to BDF)',
      )
      .option(
        '--html <file>',
        'with --matrix: also write the interactive page (tree, picker, matrix grid) to FILE',
      ),
  ).action(async (provider: string | undefined, clients: string[], options: P2pOptions) => {
    if (options.html !== undefined) {
      if (options.matrix !== true) fail('EINVAL', '--html goes with --matrix', { field: '--html' });
      checkOutputPath(options.html, '--html');
    }
    const loaded = loadTopology(options);
    const topology = withCpu(loaded.topology, options.cpu);
    const { source } = loaded;
    if (options.matrix === true) {
      if (provider !== undefined)
        fail('EINVAL', '--matrix takes no PROVIDER/CLIENT arguments; use --devices to choose devices');
      const devices = options.devices?.split(',').map((d) => resolveDevice(topology, d.trim()));
      const matrix = p2pMatrix(topology, {
        ...(options.class === undefined ? {} : { classes: parseClasses(options.class) }),
        ...(devices === undefined ? {} : { devices }),
      });
      const nvidia = nvidiaCheck(matrix, options);
      if (options.html !== undefined)
        writeOutputText(options.html, await matrixPage(loaded, topology, matrix), '--html');
      if (options.json) {
        const json = p2pMatrixToJson(topology, matrix, source) as Record<string, unknown>;
        if (nvidia !== undefined) json.nvidiaCrossCheck = nvidia;
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        process.stdout.write(formatP2pMatrix(topology, matrix, source));
        if (nvidia !== undefined) process.stdout.write(formatNvidiaCheck(nvidia));
      }
      return;
    }
    if (options.class !== undefined || options.devices !== undefined)
      fail('EINVAL', '--class and --devices go with --matrix');
    if (provider === undefined || clients.length === 0)
      fail('EINVAL', 'give a PROVIDER and at least one CLIENT, or --matrix for every pair');
    const p = resolveDevice(topology, provider);
    const decisions = clients.map((c) => calcP2pDecision(topology, p, resolveDevice(topology, c)));
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ source, decisions: decisions.map(p2pDecisionToJson) }, null, 2)}\n`,
      );
      return;
    }
    process.stdout.write(`topology: ${source}\n`);
    for (const d of decisions) process.stdout.write(formatP2pDecision(d));
  });
}

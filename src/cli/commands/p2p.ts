/**
 * `physr p2p PROVIDER CLIENT...`: the P2PDMA decision for each pair, as drivers/pci/p2pdma.c makes it;
 * `physr p2p --matrix`: every pair of DMA-capable endpoints, with reasons and remedies.
 */
import type { Command } from 'commander';
import { fail } from '../../core/index.ts';
import {
  calcP2pDecision,
  formatP2pDecision,
  formatP2pMatrix,
  P2P_ENDPOINT_CLASSES,
  type P2pEndpointClass,
  type PciTopology,
  p2pDecisionToJson,
  p2pMatrix,
  p2pMatrixToJson,
  parseCpuOption,
  resolveDevice,
} from '../../platform/index.ts';
import { addSourceOptions, loadTopology, type SourceOptions } from './topo.ts';

interface P2pOptions extends SourceOptions {
  readonly matrix?: boolean;
  readonly class?: string;
  readonly devices?: string;
  readonly cpu?: string;
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
      .option('--cpu <vendor:family>', 'the CPU when the input does not show it: amd:0x19, intel:6, arm'),
  ).action((provider: string | undefined, clients: string[], options: P2pOptions) => {
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
      process.stdout.write(
        options.json
          ? `${JSON.stringify(p2pMatrixToJson(topology, matrix, source), null, 2)}\n`
          : formatP2pMatrix(topology, matrix, source),
      );
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

/** `physr p2p PROVIDER CLIENT...`: the P2PDMA decision for each pair, as drivers/pci/p2pdma.c makes it. */
import type { Command } from 'commander';
import { fail } from '../../core/index.ts';
import {
  type Bdf,
  calcP2pDecision,
  formatP2pDecision,
  type PciTopology,
  p2pDecisionToJson,
} from '../../platform/index.ts';
import { addSourceOptions, loadTopology, type SourceOptions } from './topo.ts';

const FULL_BDF = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/i;
const SHORT_BDF = /^[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/i;

/** A device named by BDF (`0000:03:00.0` or `03:00.0`) or by its label (built-ins). */
export function resolveDevice(topology: PciTopology, name: string): Bdf {
  const lower = name.toLowerCase();
  const bdf = FULL_BDF.test(lower) ? lower : SHORT_BDF.test(lower) ? `0000:${lower}` : undefined;
  if (bdf !== undefined) {
    if (!topology.functions.has(bdf)) fail('ENODEV', `no PCI function ${bdf} in this topology`);
    return bdf;
  }
  const matches = [...topology.functions.values()].filter((f) => f.name?.toLowerCase() === lower);
  if (matches.length === 1) return matches[0]!.bdf;
  if (matches.length > 1) fail('EINVAL', `"${name}" names ${matches.length} functions; use a BDF`);
  const labels = [...topology.functions.values()].map((f) => f.name).filter((n) => n !== undefined);
  const hint = labels.length > 0 ? ` (labels: ${labels.join(', ')})` : '';
  fail('ENODEV', `"${name}" is neither a PCI address (DDDD:BB:DD.F) nor a device label${hint}`);
}

export function register(program: Command): void {
  addSourceOptions(
    program
      .command('p2p')
      .description(
        'P2PDMA between a provider and clients: map type, distance, path with ACS marks, and the reason',
      )
      .argument('<provider>', 'the device whose BAR memory is shared (BDF or label)')
      .argument('<clients...>', 'the devices that would DMA to it (BDF or label)'),
  ).action((provider: string, clients: string[], options: SourceOptions) => {
    const { topology, source } = loadTopology(options);
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

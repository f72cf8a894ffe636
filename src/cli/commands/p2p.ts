/** `physr p2p PROVIDER CLIENT...`: the P2PDMA decision for each pair, as drivers/pci/p2pdma.c makes it. */
import type { Command } from 'commander';
import {
  calcP2pDecision,
  formatP2pDecision,
  p2pDecisionToJson,
  resolveDevice,
} from '../../platform/index.ts';
import { addSourceOptions, loadTopology, type SourceOptions } from './topo.ts';

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

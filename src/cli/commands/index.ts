import type { Command } from 'commander';
import { register as registerCompare } from './compare.ts';
import { register as registerGroups } from './groups.ts';
import { register as registerList } from './list.ts';
import { register as registerP2p } from './p2p.ts';
import { register as registerRun } from './run.ts';
import { register as registerTopo } from './topo.ts';
import { register as registerTrace } from './trace.ts';

/** Every subcommand, in the order `--help` lists them. */
export function registerCommands(program: Command): void {
  registerRun(program);
  registerList(program);
  registerCompare(program);
  registerTopo(program);
  registerP2p(program);
  registerGroups(program);
  registerTrace(program);
}

/**
 * `physr compare [FILE|NAME ...]`: only the comparisons of scenarios: sg vs Linux 7.1 vs physr on
 * the same maps, and the scenario's own physr-vs-scatterlist steps.
 */
import type { Command } from 'commander';
import { renderComparisonOnly, renderJson } from '../../sim/index.ts';
import { loadForCli, parseSeedOption, runForCli } from './run.ts';

export function register(program: Command): void {
  program
    .command('compare')
    .description(
      'run scenarios and show only the comparisons: sg vs Linux 7.1 vs physr, and physr vs scatterlist (metadata, PTEs, flushes…)',
    )
    .argument('[scenarios...]', 'scenario files or built-in names (none: the whole built-in suite)')
    .option('--json', 'print the comparison as JSON')
    .option('--seed <n>', "override every scenario's seed")
    .action(async (targets: string[], flags: { json?: boolean; seed?: string }) => {
      const seed = parseSeedOption(flags.seed);
      const report = await runForCli(loadForCli(targets), seed);
      if (flags.json === true) {
        const rows = report.scenarios.map((s) => ({
          name: s.name,
          platform: s.platform,
          designs: s.designs,
          comparison: s.comparison,
          ...(s.designComparison === undefined ? {} : { designComparison: s.designComparison }),
        }));
        process.stdout.write(
          renderJson({
            scenarios: rows,
            designComparison: report.designComparison,
            total: report.comparison,
            totalOver: report.comparedScenarios,
          }),
        );
      } else {
        process.stdout.write(renderComparisonOnly(report));
      }
    });
}

/**
 * `physr groups`: IOMMU groups as the kernel derives them, beside the capture's own, with why members
 * share a group and whether a device can go to VFIO alone.
 */
import type { Command } from 'commander';
import { formatGroupReport, groupReportToJson, iommuGroupReport } from '../../platform/index.ts';
import { addSourceOptions, loadTopology, type SourceOptions } from './topo.ts';

export function register(program: Command): void {
  addSourceOptions(
    program
      .command('groups')
      .description(
        'IOMMU groups derived from ACS and multifunction beside the captured ones, why members share a group, VFIO viability',
      ),
  ).action((options: SourceOptions) => {
    const loaded = loadTopology(options);
    const report = iommuGroupReport(loaded.topology, loaded.iommu);
    process.stdout.write(
      options.json
        ? `${JSON.stringify(groupReportToJson(report, loaded.source), null, 2)}\n`
        : formatGroupReport(report, loaded.source),
    );
  });
}

/** `physr list`: the built-in scenarios and platforms. */
import type { Command } from 'commander';
import { formatError } from '../../core/index.ts';
import {
  BUILTIN_SCENARIO_DIR,
  builtinScenarioNames,
  isScenarioError,
  listPlatforms,
  loadScenarioFile,
  registerBuiltins,
  renderJson,
  resolveScenarioTarget,
  type Scenario,
} from '../../sim/index.ts';

interface ScenarioEntry {
  readonly name: string;
  readonly description: string;
  readonly platform: string;
  readonly steps: number;
}

/** A scenario's platform as a reader writes it: "x86-2s", "x86-2s + pci=…", "sysfs DIR", "file F". */
function platformText(platform: Scenario['platform']): string {
  if (typeof platform === 'string') return platform;
  if ('builtin' in platform)
    return platform.cmdline === undefined ? platform.builtin : `${platform.builtin} + ${platform.cmdline}`;
  if ('sysfs' in platform) return `sysfs ${platform.sysfs}`;
  return `file ${platform.file}`;
}

function builtinScenarios(): ScenarioEntry[] {
  return builtinScenarioNames().map((name) => {
    try {
      const s = loadScenarioFile(resolveScenarioTarget(name));
      const platform = platformText(s.platform);
      return { name, description: s.description ?? '', platform, steps: s.steps.length };
    } catch (error) {
      if (!isScenarioError(error)) throw error;
      return { name, description: `(invalid: ${formatError(error)})`, platform: '?', steps: 0 };
    }
  });
}

function columns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows.map((r) => `  ${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}`.trimEnd()).join('\n');
}

export function register(program: Command): void {
  program
    .command('list')
    .description('list the built-in scenarios and platforms')
    .option('--json', 'print the lists as JSON')
    .action((flags: { json?: boolean }) => {
      registerBuiltins();
      const scenarios = builtinScenarios();
      const platforms = listPlatforms();
      if (flags.json === true) {
        process.stdout.write(renderJson({ scenarios, platforms }));
        return;
      }
      const out = [
        `scenarios (${BUILTIN_SCENARIO_DIR}):`,
        scenarios.length === 0
          ? '  none'
          : columns(scenarios.map((s) => [s.name, s.platform, `${s.steps} steps`, s.description])),
        '',
        'platforms:',
        platforms.length === 0 ? '  none' : columns(platforms.map((p) => [p.name, p.description])),
        '',
      ];
      process.stdout.write(out.join('\n'));
    });
}

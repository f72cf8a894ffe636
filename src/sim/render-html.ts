/**
 * The HTML report: the interactive page of src/view, given the run as the same JSON `physr run
 * --json` prints (the view reads JSON only).
 */
import { type RunJson, renderViewHtml } from '../view/index.ts';
import { renderRunJson } from './render-json.ts';
import type { RunReport } from './report.ts';

/** The run's JSON as the view document's `run` section. */
export function runJson(report: RunReport): RunJson {
  return JSON.parse(renderRunJson(report)) as RunJson;
}

/** One self-contained interactive page for a run (summary first, then each scenario). */
export async function renderRunHtml(
  report: RunReport,
  options: { title?: string; command?: string } = {},
): Promise<string> {
  return renderViewHtml({
    title: options.title ?? 'physr run report',
    ...(options.command === undefined ? {} : { command: options.command }),
    run: runJson(report),
  });
}

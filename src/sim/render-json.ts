/** The JSON report: the report model as is, bigints as "0x…" strings so no 64-bit value loses bits. */
import { formatHex } from '../core/index.ts';
import type { RunReport } from './report.ts';

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? formatHex(v) : v), 2)}\n`;
}

export function renderRunJson(report: RunReport): string {
  return renderJson(report);
}

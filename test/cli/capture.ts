/** Runs the CLI in-process with process.stdout/stderr captured (and restored, even on a throw). */
import { vi } from 'vitest';
import { runCli } from '../../src/cli/index.ts';

export interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function captureCli(argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const status = await runCli(argv);
    return { status, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

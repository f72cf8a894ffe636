/**
 * The `physr` command. Each subcommand lives in `commands/NAME.ts` and exports `register(program)`;
 * this file wires them and turns every error into one located line (never a stack trace).
 */
import { Command, CommanderError } from 'commander';
import { type Errno, formatError, isPhysrError, PhysrError } from '../core/index.ts';
import { registerCommands } from './commands/index.ts';

export function buildProgram(): Command {
  const program = new Command('physr')
    .description(
      'physr: an executable model of Linux DMA mapping with physical range lists (physr) instead of scatterlists',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  return program;
}

/** Runs the CLI; returns the exit status instead of exiting, so tests can call it. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    // Commands end with a non-zero status by throwing a CommanderError carrying it.
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode;
    }
    if (isPhysrError(error)) {
      process.stderr.write(`physr: ${formatError(error)}\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`physr: internal error: ${message}\n`);
    if (process.env.PHYSR_DEBUG) process.stderr.write(`${error instanceof Error ? error.stack : ''}\n`);
    return 70;
  }
}

/**
 * A report written to a full device or a closed pipe fails asynchronously on the stream. A reader
 * that went away (EPIPE, `physr run | head`) ends the command quietly; any other failure (ENOSPC on
 * /dev/full) is one located line and exit status 2 instead of an unhandled 'error' event's stack.
 */
export function reportOutputErrors(stream: NodeJS.EventEmitter, name: string, exit: (code: number) => void) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    const code = error.code ?? 'EIO';
    if (code === 'EPIPE') {
      exit(0);
      return;
    }
    const errno: Errno = code === 'ENOSPC' || code === 'EACCES' ? code : 'EIO';
    const refusal = new PhysrError(errno, `writing the report failed (${code})`, { file: name });
    process.stderr.write(`physr: ${formatError(refusal)}\n`);
    exit(2);
  });
}

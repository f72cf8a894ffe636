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
    .addHelpText('after', `\n${EXIT_STATUS_HELP}`)
    .exitOverride();
  registerCommands(program);
  return program;
}

/** The exit statuses every command keeps to (also in the README). */
export const EXIT_STATUS_HELP = [
  'Exit status:',
  '  0   ok',
  '  1   a scenario expectation failed (run, compare); nothing else uses 1',
  '  2   a usage or input error (bad option, scenario, capture, argument), printed with its location',
  '  70  an internal error (a bug; PHYSR_DEBUG=1 prints the stack)',
  'Output to a closed pipe (physr topo | head) ends the command quietly.',
].join('\n');

/** Runs the CLI; returns the exit status instead of exiting, so tests can call it. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    // Commands end with a non-zero status by throwing a CommanderError carrying it.
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with 0; our commands carry their status (1 failed expectations, 2
      // bad input); commander's own errors (unknown option, missing argument) are usage errors: 2.
      if (error.exitCode === 0 || error.code.startsWith('physr.')) return error.exitCode;
      return 2;
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

import { exitQuietlyOnClosedPipe, runCli } from './program.ts';

exitQuietlyOnClosedPipe();
process.exitCode = await runCli(process.argv.slice(2));

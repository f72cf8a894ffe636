import { reportOutputErrors, runCli } from './program.ts';

reportOutputErrors(process.stdout, '<stdout>', (code) => process.exit(code));
process.exitCode = await runCli(process.argv.slice(2));

#!/usr/bin/env node
// Runs the compiled CLI in dist/ (built by `npm ci` through the prepare script, or `npm run
// build:cli`). In a checkout where src/ is newer than that build, it rebuilds first with the native
// tsc (about a second), so an edit is never run as old code; without tsc it runs src/ through tsx.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');
const sources = join(root, 'src');

/** Newest modification time under `dir` (ms), walking without recursion. */
function newestMtime(dir) {
  let newest = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const at = pending.pop();
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

/** Whether dist/ holds a build at least as new as every source and build setting. */
function buildIsFresh() {
  if (!existsSync(built)) return false;
  if (!existsSync(sources)) return true; // an installed package: dist/ is all there is
  const inputs = Math.max(
    newestMtime(sources),
    ...['tsconfig.json', 'tsconfig.build.json'].map((f) => statSync(join(root, f)).mtimeMs),
  );
  return statSync(built).mtimeMs >= inputs;
}

function rebuild() {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) return false;
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return result.status === 0;
}

if (buildIsFresh() || rebuild()) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(sources, 'cli', 'main.ts')).href);
}

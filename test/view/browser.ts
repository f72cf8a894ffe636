/**
 * Finding Debian's Chromium for the browser tests. Never downloads a browser: without one the tests
 * are skipped, loudly, unless PHYSR_REQUIRE_BROWSER=1 (set by .ci/run), which makes that a failure.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium'];

/** The Chromium to drive: $PHYSR_CHROMIUM, else Debian's. */
export function chromiumPath(): string | undefined {
  const given = process.env.PHYSR_CHROMIUM;
  // "none" stands for a machine without a browser (to see what npm test says then).
  if (given === 'none') return undefined;
  if (given !== undefined && given !== '') return given;
  return CANDIDATES.find((path) => existsSync(path));
}

export const BROWSER_REQUIRED = process.env.PHYSR_REQUIRE_BROWSER === '1';

export const INSTALL_HINT =
  'install it with: apt-get update && apt-get install -y chromium (or set PHYSR_CHROMIUM to a Chromium binary); .ci/run does, and never skips them';

/** Where pages and screenshots go (gitignored): test-artifacts/view. */
export function artifactDir(): string {
  const dir = fileURLToPath(new URL('../../test-artifacts/view/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Says loudly, once, that the browser tests did not run and how to make them run. */
export function announceSkip(): void {
  const bar = '!'.repeat(78);
  process.stderr.write(
    `\n${bar}\n!! BROWSER TESTS SKIPPED: no Chromium found (${CANDIDATES.join(', ')}).\n!! ${INSTALL_HINT}\n${bar}\n\n`,
  );
}

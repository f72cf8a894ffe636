/** What a refusal's errno is, for tests across the pieces. */
import { expect } from 'vitest';
import { isPhysrError, type PhysrError } from '../src/core/index.ts';

/** The errno of the PhysrError `fn` throws, undefined when it returns; any other throw passes through. */
export function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (isPhysrError(e)) return e.errno;
    throw e;
  }
  return undefined;
}

/** `fn` must throw a PhysrError with this errno (and, when given, a reason matching `reason`). */
export function expectErrno(fn: () => unknown, errno: string, reason?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isPhysrError(caught), `expected ${errno}, got ${String(caught)}`).toBe(true);
  if (isPhysrError(caught)) {
    expect(caught.errno).toBe(errno);
    if (reason !== undefined) expect(caught.reason).toMatch(reason);
  }
}

/** The PhysrError `fn` throws (to check its errno, reason and location); fails when it returns. */
export function caughtPhysrError(fn: () => unknown): PhysrError {
  try {
    fn();
  } catch (error) {
    if (isPhysrError(error)) return error;
    throw error;
  }
  throw new Error('expected a PhysrError');
}

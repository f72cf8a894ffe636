/**
 * Typed errors. Every refusal the kernel can make is a {@link PhysrError} carrying the kernel's errno
 * name (callers branch on `errno`, never on message text) and a reason in plain words. Bad user input
 * (a scenario file, a capture, a CLI argument) additionally carries a {@link SourceLocation} so the
 * command line can say what and where without a stack trace.
 */

/** The errno names physr uses, with the Linux values (include/uapi/asm-generic/errno-base.h, errno.h). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  ENOTSUPP: 524,
  EOPNOTSUPP: 95,
  EOVERFLOW: 75,
  EREMOTEIO: 121,
  ENXIO: 6,
  EACCES: 13,
  EADDRINUSE: 98,
} as const;

export type Errno = keyof typeof ERRNO;

/** Where in some input a problem was found. Lines and columns are 1-based. */
export interface SourceLocation {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  /** Dotted path of the field, e.g. `steps[3].size`. */
  readonly field?: string;
}

export class PhysrError extends Error {
  readonly errno: Errno;
  readonly reason: string;
  readonly location: SourceLocation | undefined;

  constructor(errno: Errno, reason: string, location?: SourceLocation) {
    super(`${errno}: ${reason}`);
    this.name = 'PhysrError';
    this.errno = errno;
    this.reason = reason;
    this.location = location;
  }

  /** The negative errno a kernel function would return. */
  get code(): number {
    return -ERRNO[this.errno];
  }

  /** The same error, located in some input (keeps a location already present). */
  at(location: SourceLocation): PhysrError {
    return new PhysrError(this.errno, this.reason, { ...location, ...this.location });
  }
}

/** Throws a {@link PhysrError}; an expression-friendly shorthand. */
export function fail(errno: Errno, reason: string, location?: SourceLocation): never {
  throw new PhysrError(errno, reason, location);
}

export function isPhysrError(value: unknown, errno?: Errno): value is PhysrError {
  return value instanceof PhysrError && (errno === undefined || value.errno === errno);
}

/** `file:line:column: field: ERRNO: reason` — the one-line form the CLI prints. */
export function formatError(error: PhysrError): string {
  const where: string[] = [];
  const loc = error.location;
  if (loc?.file !== undefined) {
    let place = loc.file;
    if (loc.line !== undefined) place += `:${loc.line}`;
    if (loc.line !== undefined && loc.column !== undefined) place += `:${loc.column}`;
    where.push(place);
  }
  if (loc?.field !== undefined) where.push(loc.field);
  where.push(`${error.errno}: ${error.reason}`);
  return where.join(': ');
}

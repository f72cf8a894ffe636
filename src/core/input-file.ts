/**
 * Reading what users hand us (scenarios, captures, traces) and checking where reports will be
 * written, so that a bad path is one located error at once: never a read that runs forever
 * (`/dev/zero`, a FIFO), a raw ENOTDIR/EISDIR from Node, or a failure after a long run.
 */
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { fail } from './errors.ts';

/** Largest text input read whole. Larger inputs (traces) must be streamed. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

function describeKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The located error for a path that could not be stat'ed or opened: ENOENT or EACCES naming it. */
function unreachable(error: unknown, path: string, what: string): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES') fail('EACCES', `${what} "${path}": permission denied`, { file: path });
  if (code === 'ENOTDIR')
    fail('ENOENT', `${what} "${path}": a component of the path is not a directory`, { file: path });
  fail('ENOENT', `${what} "${path}": no such file`, { file: path });
}

/** Refuses anything but a regular file of at most `maxBytes` (by its stats); returns its size. */
function checkRegularFile(stats: Stats, path: string, what: string, maxBytes: number): number {
  if (!stats.isFile())
    fail('EINVAL', `${what} "${path}" is ${describeKind(stats)}, not a regular file`, { file: path });
  if (stats.size > maxBytes) {
    fail(
      'EFBIG',
      `${what} "${path}" is ${stats.size} bytes; at most ${maxBytes} bytes (${maxBytes / 1024 / 1024} MiB) are read whole`,
      { file: path },
    );
  }
  return stats.size;
}

/**
 * Checks that `path` is a regular file no larger than `maxBytes` and returns its size; anything else
 * (a directory, device, FIFO, a too-large file) is refused before a byte is read.
 */
export function checkInputFile(path: string, what: string, maxBytes = MAX_INPUT_BYTES): number {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    unreachable(error, path, what);
  }
  return checkRegularFile(stats, path, what, maxBytes);
}

/**
 * The text of a user's input file, read whole, bounded by `maxBytes`. The file is checked by the
 * descriptor it is read through (opened non-blocking, so a FIFO or device never stalls the open),
 * and the bound is enforced while reading too, since sysfs and procfs files report size 0 or 4096
 * whatever they hold.
 */
export function readInputText(path: string, what: string, maxBytes = MAX_INPUT_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    unreachable(error, path, what);
  }
  try {
    checkRegularFile(fstatSync(fd), path, what, maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) {
        fail('EFBIG', `${what} "${path}" holds more than ${maxBytes} bytes; at most that is read whole`, {
          file: path,
        });
      }
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (error) {
    // Any refusal of the read itself (EIO, EAGAIN, a write-only /proc file's EINVAL, ...) is the
    // input's fault, not physr's: a located EIO naming the system's code, never a stack trace. (A
    // PhysrError, such as EFBIG, has a numeric code and passes through.)
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string') fail('EIO', `${what} "${path}": read failed (${code})`, { file: path });
    throw error;
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks, before any work starts, that a report can be written to `path`: its directory exists and
 * is a directory, and the path itself is not a directory. (A full device is only found on write;
 * writers must report that as a located error too.)
 */
export function checkOutputPath(path: string, what: string): void {
  const dir = dirname(path);
  let dirStats: Stats;
  try {
    dirStats = statSync(dir);
  } catch {
    fail('ENOENT', `${what} "${path}": directory "${dir}" does not exist`, { file: path });
  }
  if (!dirStats.isDirectory())
    fail('ENOTDIR', `${what} "${path}": "${dir}" is not a directory`, { file: path });
  let stats: Stats | undefined;
  try {
    stats = statSync(path);
  } catch {
    stats = undefined;
  }
  if (stats?.isDirectory() === true)
    fail('EISDIR', `${what} "${path}" is a directory; name a file`, { file: path });
  // Permission is checked now too, rather than found after the whole run.
  try {
    accessSync(stats === undefined ? dir : path, constants.W_OK);
  } catch {
    fail(
      'EACCES',
      `${what} "${path}": ${stats === undefined ? `directory "${dir}"` : 'the file'} is not writable`,
      {
        file: path,
      },
    );
  }
}

/** Writes a report to a path already checked by {@link checkOutputPath}; a write failure is located. */
export function writeOutputText(path: string, text: string, what: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    const errno =
      code === 'ENOSPC' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOENT' ? code : 'EIO';
    fail(errno, `${what} "${path}": write failed (${code})`, { file: path });
  }
}

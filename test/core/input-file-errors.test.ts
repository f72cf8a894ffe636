/**
 * The remaining refusals of the user-file helpers: a block device named as such, a read the kernel
 * fails with EIO (/proc/PID/mem at an unmapped offset: fs/proc/base.c mem_rw), write failures mapped
 * to the errno the user can act on (anything else is EIO naming the code), each located at the file.
 */
import {
  accessSync,
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkInputFile, checkOutputPath, readInputText, writeOutputText } from '../../src/core/index.ts';
import { caughtPhysrError } from '../errno.ts';

const dir = mkdtempSync(join(tmpdir(), 'physr-input-errors-'));

/** Some block device under /dev, if the machine shows one. */
function blockDevice(): string | undefined {
  for (const name of readdirSync('/dev')) {
    const path = join('/dev', name);
    try {
      if (statSync(path).isBlockDevice()) return path;
    } catch {
      // vanished or unreadable: look further
    }
  }
  return undefined;
}
const block = blockDevice();

/** The errno code a raw fs call fails with here (undefined when it succeeds). */
function fsCode(fn: () => void): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
  return undefined;
}
// Another process's environment is private (fs/proc/base.c: ptrace read access to PID 1); a
// non-root user, or root without ptrace rights on PID 1 (a container), is refused with EACCES.
const environDenied =
  fsCode(() => closeSync(openSync('/proc/1/environ', constants.O_RDONLY | constants.O_NONBLOCK))) ===
  'EACCES';
// /proc/PID directories are not writable (no one may create files there; root is refused by procfs).
const procDirReadOnly = fsCode(() => accessSync('/proc/1', constants.W_OK)) !== undefined;

describe('input files', () => {
  test.skipIf(block === undefined)('a block device is named as such, by stat and by descriptor', () => {
    for (const fn of [() => checkInputFile(block!, 'capture'), () => readInputText(block!, 'capture')]) {
      const e = caughtPhysrError(fn);
      expect(e.errno).toBe('EINVAL');
      expect(e.reason).toBe(`capture "${block}" is a block device, not a regular file`);
      expect(e.location).toEqual({ file: block });
    }
  });

  test('a character device is not called a FIFO, a socket or a block device', () => {
    expect(caughtPhysrError(() => checkInputFile('/dev/null', 'trace')).reason).toBe(
      'trace "/dev/null" is a character device, not a regular file',
    );
  });

  test('a path through a regular file: ENOENT that says why, at the path', () => {
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'x');
    const path = join(plain, 'inner.yaml');
    for (const fn of [() => checkInputFile(path, 'scenario'), () => readInputText(path, 'scenario')]) {
      const e = caughtPhysrError(fn);
      expect(e.errno).toBe('ENOENT');
      expect(e.reason).toBe(`scenario "${path}": a component of the path is not a directory`);
      expect(e.location).toEqual({ file: path });
    }
    const missing = join(dir, 'missing.yaml');
    expect(caughtPhysrError(() => checkInputFile(missing, 'scenario')).reason).toBe(
      `scenario "${missing}": no such file`,
    );
  });

  test.skipIf(!environDenied)('a file the user may not open is EACCES, at the file', () => {
    const e = caughtPhysrError(() => readInputText('/proc/1/environ', 'capture'));
    expect([e.errno, e.reason, e.location]).toEqual([
      'EACCES',
      'capture "/proc/1/environ": permission denied',
      { file: '/proc/1/environ' },
    ]);
  });

  // /proc/self/mem is a regular file of size 0; reading offset 0 (never mapped) fails with EIO.
  test('a read the kernel fails is EIO naming the code, at the file', () => {
    const e = caughtPhysrError(() => readInputText('/proc/self/mem', 'capture'));
    expect(e.errno).toBe('EIO');
    expect(e.reason).toBe('capture "/proc/self/mem": read failed (EIO)');
    expect(e.location).toEqual({ file: '/proc/self/mem' });
  });

  // /proc/self/clear_refs is write-only (0200): root may open it for reading, and the read is
  // EINVAL; anyone else is refused at open (EACCES). Either way a located error, not Node's own.
  test("a read refused with another code (a write-only /proc file's EINVAL) is EIO naming that code", () => {
    const e = caughtPhysrError(() => readInputText('/proc/self/clear_refs', 'capture'));
    expect(e.location).toEqual({ file: '/proc/self/clear_refs' });
    if (process.getuid?.() === 0) {
      expect([e.errno, e.reason]).toEqual(['EIO', 'capture "/proc/self/clear_refs": read failed (EINVAL)']);
    } else {
      expect(e.errno).toBe('EACCES');
    }
  });
});

describe('writeOutputText', () => {
  test('a directory is EISDIR, a missing directory ENOENT, each naming the code', () => {
    const e = caughtPhysrError(() => writeOutputText(dir, 'x', '--html'));
    expect([e.errno, e.reason, e.location]).toEqual([
      'EISDIR',
      `--html "${dir}": write failed (EISDIR)`,
      { file: dir },
    ]);
    const missing = join(dir, 'no', 'out.json');
    expect(caughtPhysrError(() => writeOutputText(missing, 'x', '--json')).errno).toBe('ENOENT');
  });

  test('any other failure is EIO and keeps the code the system gave', () => {
    const plain = join(dir, 'file-not-dir');
    writeFileSync(plain, '');
    const path = join(plain, 'out.json');
    const e = caughtPhysrError(() => writeOutputText(path, 'x', '--json'));
    expect([e.errno, e.reason]).toEqual(['EIO', `--json "${path}": write failed (ENOTDIR)`]);
  });

  test.skipIf(!procDirReadOnly)('checkOutputPath refuses a directory no file can be made in', () => {
    const e = caughtPhysrError(() => checkOutputPath('/proc/1/report.json', '--json'));
    expect([e.errno, e.reason, e.location]).toEqual([
      'EACCES',
      '--json "/proc/1/report.json": directory "/proc/1" is not writable',
      { file: '/proc/1/report.json' },
    ]);
  });

  // /proc/PID/environ has no write method at all (fs/proc/base.c), so trying cannot change it.
  test.skipIf(fsCode(() => writeFileSync('/proc/1/environ', '')) !== 'EACCES')(
    'a write refused by permission is EACCES, at the file',
    () => {
      const e = caughtPhysrError(() => writeOutputText('/proc/1/environ', 'x', '--json'));
      expect([e.errno, e.reason]).toEqual(['EACCES', '--json "/proc/1/environ": write failed (EACCES)']);
    },
  );

  test('a good path is written whole', () => {
    const path = join(dir, 'ok.txt');
    writeOutputText(path, 'report\n', '--out');
    expect(readInputText(path, 'report')).toBe('report\n');
  });
});

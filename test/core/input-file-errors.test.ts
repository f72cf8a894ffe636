/**
 * The remaining refusals of the user-file helpers: a block device named as such, a read the kernel
 * fails with EIO (/proc/PID/mem at an unmapped offset: fs/proc/base.c mem_rw), write failures mapped
 * to the errno the user can act on (anything else is EIO naming the code), each located at the file.
 */
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkInputFile, readInputText, writeOutputText } from '../../src/core/index.ts';
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

  // /proc/self/mem is a regular file of size 0; reading offset 0 (never mapped) fails with EIO.
  test('a read the kernel fails is EIO naming the code, at the file', () => {
    const e = caughtPhysrError(() => readInputText('/proc/self/mem', 'capture'));
    expect(e.errno).toBe('EIO');
    expect(e.reason).toBe('capture "/proc/self/mem": read failed (EIO)');
    expect(e.location).toEqual({ file: '/proc/self/mem' });
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

  test('a good path is written whole', () => {
    const path = join(dir, 'ok.txt');
    writeOutputText(path, 'report\n', '--out');
    expect(readInputText(path, 'report')).toBe('report\n');
  });
});

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkInputFile, checkOutputPath, readInputText, writeOutputText } from '../../src/core/index.ts';
import { caughtPhysrError, expectErrno } from '../errno.ts';

const dir = mkdtempSync(join(tmpdir(), 'physr-input-'));

describe('readInputText', () => {
  it('reads a regular file whole', () => {
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'hello\n');
    expect(readInputText(file, 'capture')).toBe('hello\n');
  });

  it('refuses a directory, a character device and a missing file, naming the file', () => {
    expectErrno(() => readInputText(dir, 'capture'), 'EINVAL', /is a directory, not a regular file/);
    expectErrno(() => readInputText('/dev/zero', 'capture'), 'EINVAL', /character device/);
    expectErrno(() => readInputText(join(dir, 'missing'), 'capture'), 'ENOENT', /no such file/);
  });

  it('refuses a file above the bound before reading it', () => {
    const file = join(dir, 'big.txt');
    writeFileSync(file, 'x'.repeat(2000));
    expectErrno(() => readInputText(file, 'trace', 1000), 'EFBIG', /2000 bytes; at most 1000/);
  });

  it('a path through a regular file is ENOENT, not a raw ENOTDIR', () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    expectErrno(() => readInputText(join(file, 'x'), 'capture'), 'ENOENT', /not a directory/);
  });
});

describe('what is not a regular file, and where', () => {
  it('a FIFO and a socket are named as such, and every refusal carries the file as its location', async () => {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // Opened non-blocking: the FIFO never stalls the read.
    expectErrno(() => readInputText(fifo, 'capture'), 'EINVAL', /is a FIFO, not a regular file/);
    expectErrno(() => checkInputFile(fifo, 'capture'), 'EINVAL', /is a FIFO, not a regular file/);
    const socket = join(dir, 'sock');
    const server = createServer();
    await new Promise<void>((done) => server.listen(socket, done));
    try {
      expectErrno(() => checkInputFile(socket, 'capture'), 'EINVAL', /is a socket, not a regular file/);
    } finally {
      server.close();
    }
    for (const [fn, path] of [
      [() => readInputText(join(dir, 'missing'), 'capture'), join(dir, 'missing')],
      [() => checkInputFile(join(dir, 'missing'), 'capture'), join(dir, 'missing')],
      [() => checkOutputPath(dir, '--html'), dir],
      [() => writeOutputText('/dev/full', 'x', '--json'), '/dev/full'],
    ] as const) {
      expect(caughtPhysrError(fn).location?.file).toBe(path);
    }
    expectErrno(
      () => writeOutputText('/dev/full', 'x', '--json'),
      'ENOSPC',
      /--json "\/dev\/full": write failed \(ENOSPC\)/,
    );
  });
});

describe('checkOutputPath', () => {
  it('accepts a new file in an existing directory', () => {
    expect(() => checkOutputPath(join(dir, 'out.html'), '--html')).not.toThrow();
  });
  it('refuses a missing directory, a directory, and a file used as a directory', () => {
    expectErrno(() => checkOutputPath(join(dir, 'nope', 'out.html'), '--html'), 'ENOENT', /does not exist/);
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expectErrno(() => checkOutputPath(sub, '--html'), 'EISDIR', /is a directory/);
    const file = join(dir, 'f');
    writeFileSync(file, '');
    expectErrno(() => checkOutputPath(join(file, 'out.html'), '--html'), 'ENOTDIR', /not a directory/);
  });
  // Root writes anywhere, so only an ordinary user can see this refusal.
  it.skipIf(process.getuid?.() === 0)('refuses a read-only file or directory before the run', () => {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o500);
    expectErrno(() => checkOutputPath(join(locked, 'out.html'), '--html'), 'EACCES', /not writable/);
    const file = join(dir, 'ro.html');
    writeFileSync(file, '');
    chmodSync(file, 0o400);
    expectErrno(() => checkOutputPath(file, '--html'), 'EACCES', /not writable/);
  });
});

/**
 * PhysrError's one-line form (`file:line:column: field: ERRNO: reason`, what the command line
 * prints), how a location is added, and the errno guard.
 */
import { describe, expect, test } from 'vitest';
import { ERRNO, fail, formatError, isPhysrError, PhysrError } from '../../src/core/index.ts';
import { caughtPhysrError } from '../errno.ts';

describe('formatError', () => {
  test('file, line and column joined by colons, then the field, errno and reason', () => {
    const e = new PhysrError('EINVAL', 'size is zero', {
      file: 'a.yaml',
      line: 3,
      column: 7,
      field: 'steps[0].size',
    });
    expect(formatError(e)).toBe('a.yaml:3:7: steps[0].size: EINVAL: size is zero');
  });

  test('a column without a line is not printed (it would read as the line)', () => {
    expect(formatError(new PhysrError('ENOENT', 'gone', { file: 'x.json', column: 5 }))).toBe(
      'x.json: ENOENT: gone',
    );
  });

  test('a line without a column, a file alone, a field alone, no location', () => {
    expect(formatError(new PhysrError('EIO', 'r', { file: 'c.bin', line: 12 }))).toBe('c.bin:12: EIO: r');
    expect(formatError(new PhysrError('EIO', 'r', { file: 'c.bin' }))).toBe('c.bin: EIO: r');
    expect(formatError(new PhysrError('E2BIG', 'too many', { field: 'ranges', line: 4 }))).toBe(
      'ranges: E2BIG: too many',
    );
    expect(formatError(new PhysrError('ENOMEM', 'no iova'))).toBe('ENOMEM: no iova');
  });
});

describe('PhysrError', () => {
  test('message, name, errno, reason and the negative kernel code', () => {
    const e = new PhysrError('EOVERFLOW', 'too far');
    expect(e.message).toBe('EOVERFLOW: too far');
    expect(e.name).toBe('PhysrError');
    expect([e.errno, e.reason, e.location]).toEqual(['EOVERFLOW', 'too far', undefined]);
    // include/uapi/asm-generic/errno.h: EOVERFLOW 75; ENOTSUPP (include/linux/errno.h) 524.
    expect(e.code).toBe(-75);
    expect(new PhysrError('ENOTSUPP', 'x').code).toBe(-524);
    expect(ERRNO.EACCES).toBe(13);
  });

  test('at() adds a location but keeps the fields one already has', () => {
    const inner = new PhysrError('EINVAL', 'bad', { field: 'steps[2].iova', line: 9 });
    const located = inner.at({ file: 's.yaml', line: 1, field: 'steps' });
    expect(located).not.toBe(inner);
    expect(located.location).toEqual({ file: 's.yaml', line: 9, field: 'steps[2].iova' });
    expect([located.errno, located.reason]).toEqual(['EINVAL', 'bad']);
    expect(formatError(located)).toBe('s.yaml:9: steps[2].iova: EINVAL: bad');
  });

  test('fail() throws the PhysrError it describes', () => {
    const e = caughtPhysrError(() => fail('EBUSY', 'in use', { file: 'f' }));
    expect([e.errno, e.reason, e.location?.file]).toEqual(['EBUSY', 'in use', 'f']);
  });

  test('isPhysrError checks the class and, when given, the errno', () => {
    const e = new PhysrError('EFAULT', 'x');
    expect(isPhysrError(e)).toBe(true);
    expect(isPhysrError(e, 'EFAULT')).toBe(true);
    expect(isPhysrError(e, 'EINVAL')).toBe(false);
    expect(isPhysrError(new Error('EFAULT: x'))).toBe(false);
    expect(isPhysrError(undefined, 'EFAULT')).toBe(false);
  });
});

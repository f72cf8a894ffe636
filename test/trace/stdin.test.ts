import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { captureCli } from '../cli/capture.ts';

const SNIPPET = '../shared/data/captures/trace-snippets/iommu-use-after-unmap-6.12.txt';

/** Runs `physr ARGS` with standard input replaced by `text` in chunks (put back afterwards). */
async function withStdin(text: string, args: string[]) {
  const saved = Object.getOwnPropertyDescriptor(process, 'stdin')!;
  // Small chunks, cut mid-line, as a pipe delivers them.
  const chunks: Buffer[] = [];
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += 37) chunks.push(bytes.subarray(i, i + 37));
  Object.defineProperty(process, 'stdin', { value: Readable.from(chunks), configurable: true });
  try {
    return await captureCli(args);
  } finally {
    Object.defineProperty(process, 'stdin', saved);
  }
}

describe('physr trace - (standard input)', () => {
  it('reads the trace from standard input and reports what the file gives', async () => {
    const fromFile = await captureCli(['trace', SNIPPET, '--json', '--no-model']);
    const fromStdin = await withStdin(readFileSync(SNIPPET, 'utf8'), ['trace', '-', '--json', '--no-model']);
    expect(fromStdin.status).toBe(0);
    const a = JSON.parse(fromFile.stdout);
    const b = JSON.parse(fromStdin.stdout);
    expect(b.file).toBe('<stdin>');
    expect(b.findings[0]).toMatchObject({ class: 'use-after-unmap', address: '0xfe980000' });
    expect({ ...b, file: a.file }).toEqual(a);
  });
  it('a malformed line on standard input is located as <stdin>:line', async () => {
    const text =
      '  a-1 [000] .....  1.000001: dma_map_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=4096 phys_addr=1000 attrs=\n' +
      '  a-1 [000] .....  1.000002: dma_unmap_phys: 0000:00:06.0 dir=SIDEWAYS dma_addr=1000 size=4096 attrs=\n';
    const r = await withStdin(text, ['trace', '-', '--no-model']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('physr: <stdin>:2: dma_unmap_phys: EINVAL: dir=SIDEWAYS is not a DMA direction\n');
  });
});

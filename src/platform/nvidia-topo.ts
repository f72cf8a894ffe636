/**
 * `nvidia-smi topo -m` as a cross-check of the kernel's P2PDMA verdict. NVIDIA's path classes (PIX,
 * PXB, PHB, NODE, SYS, NV#) describe the PCIe path only; they never say whether Linux's p2pdma
 * will route a pair through a switch. A GPU pair NVIDIA calls PIX/PXB (below a switch) that the
 * kernel sends through the root complex (ACS redirect) or refuses is the first thing to check when
 * P2P hangs or is slow.
 */
import { fail } from '../core/index.ts';
import { matrixCell, type P2pMatrix } from './p2p-matrix.ts';
import { parseBdf } from './pci-bdf.ts';
import type { Bdf } from './pci-types.ts';

export interface NvidiaTopo {
  /** Column names in order (GPU0, GPU1, NIC0, ...). */
  readonly columns: readonly string[];
  /** Path class per row name and column name. */
  readonly classes: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: nvidia-smi underlines its header with ANSI codes.
const ANSI = /\x1b\[[0-9;]*m/g;

/** Parses `nvidia-smi topo -m` text (tabs or spaces; the underline escapes stripped). */
export function parseNvidiaTopo(text: string, file = 'nvidia-smi topo -m'): NvidiaTopo {
  const lines = text.replace(ANSI, '').split('\n');
  const headerIndex = lines.findIndex((l) => /^\s*GPU0\b/.test(l) && !/^\s*GPU0\s+X\b/.test(l));
  if (headerIndex < 0)
    fail('EINVAL', 'expected a header line starting with GPU0 (nvidia-smi topo -m output)', { file });
  const header = lines[headerIndex]!.trim().split(/\t+|\s{2,}|\s(?=GPU|NIC)/);
  const columns = header.filter((h) => /^(GPU|NIC)\d+$/.test(h));
  const classes = new Map<string, Map<string, string>>();
  for (let i = headerIndex + 1; i < lines.length; i++) {
    const cells = lines[i]!.trim().split(/\s+/);
    const row = cells[0];
    if (row === undefined || !/^(GPU|NIC)\d+$/.test(row)) continue;
    const values = cells.slice(1, 1 + columns.length);
    if (values.length < columns.length)
      fail(
        'EINVAL',
        `row ${row} has ${values.length} path classes for ${columns.length} columns (truncated?)`,
        {
          file,
          line: i + 1,
        },
      );
    classes.set(row, new Map(columns.map((c, k) => [c, values[k]!])));
  }
  return { columns, classes };
}

/** `nvidia-smi --query-gpu=index,pci.bus_id --format=csv`: GPU index → BDF. */
export function parseNvidiaBusIds(text: string, file = 'nvidia-smi --query-gpu'): Map<string, Bdf> {
  const out = new Map<string, Bdf>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || /^index\b/i.test(line)) continue;
    const m = /^(\d+)\s*,\s*([0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/i.exec(line);
    if (m === null)
      fail('EINVAL', `expected "INDEX, DDDDDDDD:BB:DD.F", found "${line}"`, { file, line: i + 1 });
    out.set(`GPU${m[1]}`, parseBdf(m[2]!.toLowerCase(), { file, line: i + 1 }));
  }
  return out;
}

export interface NvidiaCrossCheck {
  readonly a: string;
  readonly b: string;
  readonly bdfs: readonly [Bdf, Bdf];
  readonly nvidia: string;
  readonly kernel: string;
  readonly agrees: boolean | 'not-pcie';
  readonly why: string;
}

/** Every GPU pair both inputs know, with whether NVIDIA's class and the kernel's verdict agree. */
export function crossCheckNvidia(
  matrix: P2pMatrix,
  topo: NvidiaTopo,
  busIds: ReadonlyMap<string, Bdf>,
): NvidiaCrossCheck[] {
  const index = new Map(matrix.endpoints.map((e, i) => [e.bdf, i]));
  const gpus = topo.columns.filter((c) => c.startsWith('GPU'));
  const out: NvidiaCrossCheck[] = [];
  for (let x = 0; x < gpus.length; x++)
    for (let y = x + 1; y < gpus.length; y++) {
      const a = gpus[x]!;
      const b = gpus[y]!;
      const ba = busIds.get(a);
      const bb = busIds.get(b);
      const nvidia = topo.classes.get(a)?.get(b);
      if (ba === undefined || bb === undefined || nvidia === undefined) continue;
      const i = index.get(ba);
      const j = index.get(bb);
      if (i === undefined || j === undefined) continue;
      const cell = matrixCell(matrix, i, j);
      const kernel = `${cell.mapType}${cell.certainty === 'depends' ? ' (depends)' : ''}`;
      let agrees: NvidiaCrossCheck['agrees'];
      let why: string;
      if (/^NV\d+$/.test(nvidia)) {
        agrees = 'not-pcie';
        why = 'NVLink: the GPUs talk over NVLink, not PCIe P2PDMA';
      } else if (nvidia === 'PIX' || nvidia === 'PXB') {
        agrees = cell.mapType === 'bus-address';
        why = agrees
          ? 'both keep it below a PCIe switch'
          : `NVIDIA sees a path below a PCIe switch, but the kernel ${cell.mapType === 'not-supported' ? 'refuses the pair' : 'sends it up through the root complex'} (see the pair's reason and remedy)`;
      } else {
        agrees = cell.mapType !== 'bus-address';
        why = agrees
          ? 'both cross a host bridge'
          : `NVIDIA sees a path through a host bridge (${nvidia}), but the kernel finds a common switch: the capture and nvidia-smi disagree on the tree`;
      }
      out.push({ a, b, bdfs: [ba, bb], nvidia, kernel, agrees, why });
    }
  return out;
}

/**
 * The fields of one event's printed body, as TP_printk writes them: `key=value` tokens separated by
 * single spaces, a leading device name for dma: events, `{0x…,0x…}` arrays (__print_array), `%llx`
 * hex without `0x`, `0x%016llx` with it, `%zu` decimal. Values are checked as their print format
 * makes them; a missing or malformed field throws {@link FieldError} naming the field.
 */
import type { TraceDirection } from './events.ts';

/** A body field that is absent or not what the event's print format makes. */
export class FieldError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'FieldError';
  }
}

const HEX_DIGITS = /^[0-9a-fA-F]{1,16}$/;
const DECIMAL = /^[0-9]{1,20}$/;
const U64_MAX = (1n << 64n) - 1n;

/** `%llx`: hex digits without a prefix (a `0x` prefix is accepted too). */
export function parseHex(text: string, field: string): bigint {
  const digits = text.startsWith('0x') || text.startsWith('0X') ? text.slice(2) : text;
  if (!HEX_DIGITS.test(digits)) throw new FieldError(`${field}=${text} is not a 64-bit hex number`);
  return BigInt(`0x${digits}`);
}

/** `%zu`/`%d` as an unsigned 64-bit bigint. */
export function parseDecimal(text: string, field: string): bigint {
  if (!DECIMAL.test(text)) throw new FieldError(`${field}=${text} is not a decimal number`);
  const value = BigInt(text);
  if (value > U64_MAX) throw new FieldError(`${field}=${text} is larger than 64 bits`);
  return value;
}

function parseSmallInt(text: string, field: string): number {
  if (!/^-?[0-9]{1,10}$/.test(text)) throw new FieldError(`${field}=${text} is not an integer`);
  return Number(text);
}

/** `__print_array` of u64 or u32: `{0x1,0x2}`, `{}` when empty. */
export function parseHexArray(text: string, field: string): bigint[] {
  if (text.length < 2 || text.charCodeAt(0) !== 123 || text.charCodeAt(text.length - 1) !== 125)
    throw new FieldError(`${field}=${text} is not a {…} array`);
  if (text.length === 2) return [];
  const parts = text.slice(1, -1).split(',');
  const out = new Array<bigint>(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (!p.startsWith('0x')) throw new FieldError(`${field}[${i}]=${p} is not 0x-prefixed hex`);
    out[i] = parseHex(p, `${field}[${i}]`);
  }
  return out;
}

const DIRECTIONS: ReadonlySet<string> = new Set(['BIDIRECTIONAL', 'TO_DEVICE', 'FROM_DEVICE', 'NONE']);

/**
 * A parsed body: the leading words that are not `key=value` (device name, `IOMMU:`, `[TRUNCATED]`),
 * and the `key=value` fields. For iommu map/unmap, `0x… - 0x…` gives the range end as `iova_end`.
 * Fields are found by scanning for ` key=` when asked (an event reads five or six of them), which
 * keeps a line's parse free of per-token allocations.
 */
export class EventFields {
  private wordList: string[] | undefined;

  constructor(private readonly body: string) {}

  /** Tokens without `=` (the device name, labels, `[TRUNCATED]`, `FORCE`/`NORMAL`). */
  get words(): readonly string[] {
    if (this.wordList === undefined) {
      const out: string[] = [];
      const tokens = this.body.split(' ');
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i]!;
        if (t.length === 0 || t.indexOf('=') > 0) continue;
        if (t === '-' && i + 1 < tokens.length) {
          i++;
          continue;
        }
        out.push(t);
      }
      this.wordList = out;
    }
    return this.wordList;
  }

  private find(key: string): string | undefined {
    if (key === 'iova_end') {
      const dash = this.body.indexOf(' - ');
      if (dash < 0) return undefined;
      const end = this.body.indexOf(' ', dash + 3);
      return this.body.slice(dash + 3, end < 0 ? undefined : end);
    }
    let at: number;
    if (this.body.startsWith(`${key}=`)) at = 0;
    else {
      at = this.body.indexOf(` ${key}=`);
      if (at < 0) return undefined;
      at++;
    }
    const from = at + key.length + 1;
    const end = this.body.indexOf(' ', from);
    return this.body.slice(from, end < 0 ? undefined : end);
  }

  has(key: string): boolean {
    return this.find(key) !== undefined;
  }

  raw(key: string): string {
    const v = this.find(key);
    if (v === undefined) throw new FieldError(`no ${key}= field`);
    return v;
  }

  hex(key: string): bigint {
    return parseHex(this.raw(key), key);
  }

  decimal(key: string): bigint {
    return parseDecimal(this.raw(key), key);
  }

  int(key: string): number {
    return parseSmallInt(this.raw(key), key);
  }

  hexArray(key: string): bigint[] {
    return parseHexArray(this.raw(key), key);
  }

  dir(): TraceDirection {
    const v = this.raw('dir');
    if (!DIRECTIONS.has(v)) throw new FieldError(`dir=${v} is not a DMA direction`);
    return v as TraceDirection;
  }

  optionalDir(): TraceDirection | undefined {
    return this.has('dir') ? this.dir() : undefined;
  }

  /** `__print_flags` of DMA_ATTR_*: empty or names joined by `|`. */
  attrs(): string[] {
    const v = this.raw('attrs');
    return v === '' ? [] : v.split('|');
  }

  /** `a/b` of the current dma_map_sg form. */
  fraction(key: string): { shown: number; full: number } {
    const v = this.raw(key);
    const slash = v.indexOf('/');
    if (slash < 0) throw new FieldError(`${key}=${v} is not shown/full`);
    const shown = parseSmallInt(v.slice(0, slash), key);
    const full = parseSmallInt(v.slice(slash + 1), key);
    if (shown < 0 || full < shown) throw new FieldError(`${key}=${v}: shown count above the full count`);
    return { shown, full };
  }

  /** ` [TRUNCATED]` as dma_map_sg prints it. */
  get truncated(): boolean {
    return this.body.includes(' [TRUNCATED]');
  }

  /** The leading device name of a dma: event (`__get_str(device)`). */
  device(): string {
    const sp = this.body.indexOf(' ');
    const d = sp < 0 ? this.body : this.body.slice(0, sp);
    if (d.length === 0 || d.indexOf('=') >= 0) throw new FieldError('no device name');
    return d;
  }
}

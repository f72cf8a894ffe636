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

const U64_MAX = (1n << 64n) - 1n;

/** Value of a hex digit's char code, -1 for anything else. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

function fieldName(field: string, index: number): string {
  return index < 0 ? field : `${field}[${index}]`;
}

/**
 * `%llx` in `s` from `from` to `to` (a `0x`/`0X` prefix accepted), 1 to 16 digits. Up to 13 digits
 * (52 bits) are summed in a Number, exactly, so a line's parse makes no string per field; `field`
 * and `index` only name the field in the error.
 */
function hexAt(s: string, from: number, to: number, field: string, index = -1): bigint {
  let i = from;
  if (to - i >= 2 && s.charCodeAt(i) === 48 && (s.charCodeAt(i + 1) | 0x20) === 120) i += 2;
  const digits = to - i;
  let v = 0;
  let ok = digits >= 1 && digits <= 16;
  for (let j = i; ok && j < to; j++) {
    const d = hexDigit(s.charCodeAt(j));
    ok = d >= 0;
    v = v * 16 + d;
  }
  if (!ok) throw new FieldError(`${fieldName(field, index)}=${s.slice(from, to)} is not a 64-bit hex number`);
  return digits <= 13 ? BigInt(v) : BigInt(`0x${s.slice(i, to)}`);
}

/** `%zu`/`%d` in `s` from `from` to `to` as an unsigned 64-bit bigint. */
function decimalAt(s: string, from: number, to: number, field: string): bigint {
  const digits = to - from;
  let v = 0;
  let ok = digits >= 1 && digits <= 20;
  for (let j = from; ok && j < to; j++) {
    const c = s.charCodeAt(j);
    ok = c >= 48 && c <= 57;
    v = v * 10 + (c - 48);
  }
  if (!ok) throw new FieldError(`${field}=${s.slice(from, to)} is not a decimal number`);
  // Up to 15 digits the sum is exact (below 2^53).
  if (digits <= 15) return BigInt(v);
  const value = BigInt(s.slice(from, to));
  if (value > U64_MAX) throw new FieldError(`${field}=${s.slice(from, to)} is larger than 64 bits`);
  return value;
}

/** `%llx`: hex digits without a prefix (a `0x` prefix is accepted too). */
export function parseHex(text: string, field: string): bigint {
  return hexAt(text, 0, text.length, field);
}

/** `%zu`/`%d` as an unsigned 64-bit bigint. */
export function parseDecimal(text: string, field: string): bigint {
  return decimalAt(text, 0, text.length, field);
}

function parseSmallInt(text: string, field: string): number {
  if (!/^-?[0-9]{1,10}$/.test(text)) throw new FieldError(`${field}=${text} is not an integer`);
  return Number(text);
}

/** `__print_array` of u64 or u32 in `s` from `from` to `to`: `{0x1,0x2}`, `{}` when empty. */
function hexArrayAt(s: string, from: number, to: number, field: string): bigint[] {
  if (to - from < 2 || s.charCodeAt(from) !== 123 || s.charCodeAt(to - 1) !== 125)
    throw new FieldError(`${field}=${s.slice(from, to)} is not a {…} array`);
  const out: bigint[] = [];
  if (to - from === 2) return out;
  const end = to - 1;
  let p = from + 1;
  for (let i = 0; ; i++) {
    let comma = s.indexOf(',', p);
    if (comma < 0 || comma > end) comma = end;
    if (!s.startsWith('0x', p))
      throw new FieldError(`${field}[${i}]=${s.slice(p, comma)} is not 0x-prefixed hex`);
    out.push(hexAt(s, p, comma, field, i));
    if (comma === end) return out;
    p = comma + 1;
  }
}

/** `__print_array` of u64 or u32: `{0x1,0x2}`, `{}` when empty. */
export function parseHexArray(text: string, field: string): bigint[] {
  return hexArrayAt(text, 0, text.length, field);
}

const DIRECTIONS: readonly TraceDirection[] = ['BIDIRECTIONAL', 'TO_DEVICE', 'FROM_DEVICE', 'NONE'];

/** What an empty `attrs=` gives: one shared, frozen list. */
const NO_ATTRS: readonly string[] = Object.freeze([]);

/**
 * The device name last read: a line naming the same device gets the same string back, so the
 * replay's per-device map hashes it once rather than once per event.
 */
let lastDevice = '';

/**
 * A parsed body: the leading words that are not `key=value` (device name, `IOMMU:`, `[TRUNCATED]`),
 * and the `key=value` fields. For iommu map/unmap, `0x… - 0x…` gives the range end as `iova_end`.
 * The body is `text` from `start` on (the line itself: no copy). Fields are found by scanning for
 * ` key=` when asked (an event reads five or six of them) and numbers are read in place, which keeps
 * a line's parse free of per-field strings.
 */
export class EventFields {
  private wordList: string[] | undefined;

  constructor(
    private readonly text: string,
    private readonly start = 0,
  ) {}

  /** Tokens without `=` (the device name, labels, `[TRUNCATED]`, `FORCE`/`NORMAL`). */
  get words(): readonly string[] {
    if (this.wordList === undefined) {
      const out: string[] = [];
      const tokens = this.text.slice(this.start).split(' ');
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

  /** Index in `text` where `key`'s value begins (after `key=`), or -1. */
  private valueAt(key: string): number {
    const s = this.text;
    if (key === 'iova_end') {
      const dash = s.indexOf(' - ', this.start);
      return dash < 0 ? -1 : dash + 3;
    }
    // The first `key=` at the body's start or after a space.
    let from = this.start;
    for (;;) {
      const i = s.indexOf(key, from);
      if (i < 0) return -1;
      if (s.charCodeAt(i + key.length) === 61 && (i === this.start || s.charCodeAt(i - 1) === 32))
        return i + key.length + 1;
      from = i + 1;
    }
  }

  /** End of the value beginning at `at`: the next space, or the end of the line. */
  private valueEnd(at: number): number {
    const end = this.text.indexOf(' ', at);
    return end < 0 ? this.text.length : end;
  }

  private mustAt(key: string): number {
    const at = this.valueAt(key);
    if (at < 0) throw new FieldError(`no ${key}= field`);
    return at;
  }

  has(key: string): boolean {
    return this.valueAt(key) >= 0;
  }

  raw(key: string): string {
    const at = this.mustAt(key);
    return this.text.slice(at, this.valueEnd(at));
  }

  hex(key: string): bigint {
    const at = this.mustAt(key);
    return hexAt(this.text, at, this.valueEnd(at), key);
  }

  decimal(key: string): bigint {
    const at = this.mustAt(key);
    return decimalAt(this.text, at, this.valueEnd(at), key);
  }

  int(key: string): number {
    return parseSmallInt(this.raw(key), key);
  }

  hexArray(key: string): bigint[] {
    const at = this.mustAt(key);
    return hexArrayAt(this.text, at, this.valueEnd(at), key);
  }

  dir(): TraceDirection {
    const at = this.mustAt('dir');
    const end = this.valueEnd(at);
    for (const d of DIRECTIONS) if (end - at === d.length && this.text.startsWith(d, at)) return d;
    throw new FieldError(`dir=${this.text.slice(at, end)} is not a DMA direction`);
  }

  optionalDir(): TraceDirection | undefined {
    return this.has('dir') ? this.dir() : undefined;
  }

  /** `__print_flags` of DMA_ATTR_*: empty or names joined by `|`. */
  attrs(): readonly string[] {
    const at = this.mustAt('attrs');
    const end = this.valueEnd(at);
    return end === at ? NO_ATTRS : this.text.slice(at, end).split('|');
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
    return this.text.indexOf(' [TRUNCATED]', this.start) >= 0;
  }

  /** The leading device name of a dma: event (`__get_str(device)`). */
  device(): string {
    const s = this.text;
    const sp = s.indexOf(' ', this.start);
    const end = sp < 0 ? s.length : sp;
    const length = end - this.start;
    if (length > 0 && length === lastDevice.length && s.startsWith(lastDevice, this.start)) return lastDevice;
    const d = s.slice(this.start, end);
    if (d.length === 0 || d.indexOf('=') >= 0) throw new FieldError('no device name');
    lastDevice = d;
    return d;
  }
}

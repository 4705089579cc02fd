/**
 * Redaction of injected values in an upstream answer (DESIGN.md section 4: use without reading).
 *
 * What is looked for. Every form in which an API is likely to echo a credential is a needle (the
 * value, its base64 in every alignment, hex, URL, form and JSON encodings; `needlesFor`), and the
 * answer is searched in two normalised views that map each of their bytes back to the raw bytes
 * it came from:
 *  - the literal view: ASCII case folded, single line breaks dropped (MIME and PEM base64 wrap
 *    their lines; upper-case hex and `%XX`, a value shouted in capitals);
 *  - the decoded view: the same, after undoing one layer of `%xx`, JSON string escapes
 *    (`\u00e9`, `\u0026`, `\/`, surrogate pairs) and HTML character references (`&amp;`, `&#39;`,
 *    `&#x27;`) — what Python's `urllib.parse.quote` and `json.dumps`, Go's `encoding/json` and
 *    HTML templates produce by default, whichever characters they choose to escape.
 * A match in either view replaces its raw bytes (overlapping matches as one) with the mark.
 *
 * Why the stream is held back by a fixed window. A redactor that holds back only a tail that could
 * begin a needle is an oracle: an agent that makes an API echo a guess sees from where its answer
 * is split whether the guess is a prefix of the value, and so learns the value a character at a
 * time. Here nothing the agent observes depends on the value except where a whole needle is found:
 * the last `window` bytes are always held back whatever they are (a size that depends on the
 * needles' lengths, rounded up so it does not tell them), and bytes that have waited `holdMs` are
 * released on a timer whatever they are, so a streamed event is late by at most that much.
 */
import { REDACTION_MARK } from "../../../shared/calls.js";

/** Shortest value worth redacting: shorter ones would shred ordinary text. */
const MIN_NEEDLE_CHARS = 4;
/** The user part of a basic `user:password` value is redacted on its own from this length. */
const BASIC_PART_MIN_CHARS = 8;
/** Base64 of a value inside a larger document (a JWT) is looked for from this many characters. */
const MIN_EMBEDDED_BASE64_CHARS = 8;
/**
 * The most raw bytes one byte of the decoded view can come from: a character reference such as
 * `&#x00041;` (10), plus a dropped line break before the next one (2).
 */
const RAW_PER_VIEW_BYTE = 12;
/** Raw bytes past a view byte that decide how it is read (`\ud83d\ude00` is 12, a CRLF 2 more). */
const LOOKAHEAD = 16;
/** How long (ms) the body redactor holds a byte at most when no more bytes come (an SSE event's delay). */
export const RELEASE_AFTER_MS = 50;
/** The window is a multiple of this, so its size does not tell the value's length. */
const WINDOW_STEP = 4096;

const BASE64_ALPHABET = /^[A-Za-z0-9+/_-]+$/;

/**
 * Base64 and base64url of `bytes` as they appear inside a larger base64 document: the value starts
 * at offset 0, 1 or 2 of a 3-byte group, and the characters that mix its bits with its neighbours'
 * are left out (the matcher then takes one base64 character on each side of a match too).
 */
function embeddedBase64(bytes: Buffer): string[] {
  const out: string[] = [];
  for (const shift of [0, 1, 2]) {
    const b64 = Buffer.concat([Buffer.alloc(shift), bytes])
      .toString("base64")
      .replace(/=+$/, "");
    const mixedAtStart = [0, 2, 3][shift] ?? 0;
    const mixedAtEnd = (bytes.length + shift) % 3 === 0 ? 0 : 1;
    const inner = b64.slice(mixedAtStart, b64.length - mixedAtEnd);
    if (inner.length >= MIN_EMBEDDED_BASE64_CHARS) out.push(inner, inner.replaceAll("+", "-").replaceAll("/", "_"));
  }
  return out;
}

/**
 * The strings to look for when `value` was injected: the value; its base64 (padded, unpadded,
 * base64url, and inside a larger base64 document at any alignment, as in a JWT or a MIME part);
 * hex; `encodeURIComponent` and form encoding; JSON string escaping, also with `/` as `\/`. Case,
 * line-wrapped base64, other percent-encoders, `\uXXXX` and HTML escapes are the matcher's job
 * (see the module comment), not extra needles. `basic` marks a `user:password` value, whose
 * password alone and user alone are also redacted — the user part is the secret with some APIs
 * (Stripe's `sk_…:`) — when that part has at least 8 characters, so a short user name such as
 * `admin` is not blanked out of every answer. Needles shorter than 4 characters are skipped.
 */
export function needlesFor(value: string, style: "plain" | "basic" = "plain"): string[] {
  const forms = new Set<string>();
  const add = (v: string): void => {
    if (v.length >= MIN_NEEDLE_CHARS) forms.add(v);
  };
  const addAll = (v: string): void => {
    add(v);
    const b = Buffer.from(v, "utf8");
    add(b.toString("base64"));
    add(b.toString("base64").replace(/=+$/, ""));
    add(b.toString("base64url"));
    add(b.toString("base64url") + "=".repeat((4 - (b.toString("base64url").length % 4)) % 4));
    // A JWT or other base64 of a JSON document holds the value JSON-escaped.
    for (const inner of [...embeddedBase64(b), ...embeddedBase64(Buffer.from(JSON.stringify(v).slice(1, -1), "utf8"))])
      add(inner);
    add(b.toString("hex"));
    add(encodeURIComponent(v));
    add(new URLSearchParams({ v }).toString().slice(2));
    add(JSON.stringify(v).slice(1, -1));
    add(JSON.stringify(v).slice(1, -1).replaceAll("/", "\\/"));
  };
  addAll(value);
  if (style === "basic") {
    const colon = value.indexOf(":");
    const password = colon >= 0 ? value.slice(colon + 1) : "";
    const user = colon >= 0 ? value.slice(0, colon) : "";
    if (password.length > 0) addAll(password);
    if (user.length >= BASIC_PART_MIN_CHARS) addAll(user);
  }
  return [...forms];
}

/** A normalised view of raw bytes: view byte i came from raw bytes [start[i], end[i]). */
interface View {
  bytes: Buffer;
  start: Int32Array;
  end: Int32Array;
}

const CR = 0x0d;
const LF = 0x0a;
const isBreak = (b: number | undefined): boolean => b === CR || b === LF;

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** The number written by `count` hex digits at `at`, or -1. */
function hexAt(data: Buffer, at: number, count: number): number {
  let v = 0;
  for (let i = 0; i < count; i++) {
    const h = hexValue(data[at + i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

const JSON_ESCAPES: Readonly<Record<number, number>> = {
  0x22: 0x22,
  0x5c: 0x5c,
  0x2f: 0x2f,
  0x6e: LF,
  0x72: CR,
  0x74: 0x09,
  0x62: 0x08,
  0x66: 0x0c,
};
const NAMED_REFERENCES: ReadonlyArray<[string, number]> = [
  ["amp;", 0x26],
  ["lt;", 0x3c],
  ["gt;", 0x3e],
  ["quot;", 0x22],
  ["apos;", 0x27],
];

/** `%xx` at `at`: the byte and the raw length, or null. */
function percentAt(data: Buffer, at: number): [Buffer, number] | null {
  const v = hexAt(data, at + 1, 2);
  return v < 0 ? null : [Buffer.from([v]), 3];
}

/** A JSON escape at `at` (a backslash): the bytes it stands for and its raw length, or null. */
function jsonEscapeAt(data: Buffer, at: number): [Buffer, number] | null {
  const c = data[at + 1];
  if (c === undefined) return null;
  if ((c | 0x20) !== 0x75) {
    const simple = JSON_ESCAPES[c];
    return simple === undefined ? null : [Buffer.from([simple]), 2];
  }
  const unit = hexAt(data, at + 2, 4);
  if (unit < 0) return null;
  if (unit >= 0xd800 && unit < 0xdc00) {
    const low = data[at + 6] === 0x5c && ((data[at + 7] ?? 0) | 0x20) === 0x75 ? hexAt(data, at + 8, 4) : -1;
    if (low < 0xdc00 || low > 0xdfff) return null;
    return [Buffer.from(String.fromCodePoint(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)), "utf8"), 12];
  }
  if (unit >= 0xdc00 && unit <= 0xdfff) return null;
  return [Buffer.from(String.fromCodePoint(unit), "utf8"), 6];
}

/** An HTML character reference at `at` (an ampersand): the bytes and the raw length, or null. */
function referenceAt(data: Buffer, at: number): [Buffer, number] | null {
  if (data[at + 1] === 0x23) {
    const hex = ((data[at + 2] ?? 0) | 0x20) === 0x78;
    const first = at + (hex ? 3 : 2);
    let i = first;
    let v = 0;
    while (i < first + (hex ? 6 : 7)) {
      const b = data[i];
      const d = hex ? hexValue(b) : b !== undefined && b >= 0x30 && b <= 0x39 ? b - 0x30 : -1;
      if (d < 0) break;
      v = v * (hex ? 16 : 10) + d;
      i++;
    }
    if (i === first || data[i] !== 0x3b || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return null;
    return [Buffer.from(String.fromCodePoint(v), "utf8"), i + 1 - at];
  }
  for (const [name, byte] of NAMED_REFERENCES) {
    let ok = true;
    for (let k = 0; k < name.length && ok; k++)
      ok = ((data[at + 1 + k] ?? 0) | (k < name.length - 1 ? 0x20 : 0)) === name.charCodeAt(k);
    if (ok) return [Buffer.from([byte]), name.length + 1];
  }
  return null;
}

/**
 * The literal (`decode` false) or decoded view of `data`: ASCII letters folded to lower case, a
 * single line break (CR, LF or CRLF between two other bytes) dropped; with `decode`, one layer of
 * `%xx`, JSON escapes and HTML character references undone first. A view byte never comes from
 * more than RAW_PER_VIEW_BYTE raw bytes, and how a byte is read depends on at most LOOKAHEAD raw
 * bytes after it.
 */
function viewOf(data: Buffer, decode: boolean): View {
  const n = data.length;
  const bytes = Buffer.allocUnsafe(n);
  const start = new Int32Array(n);
  const end = new Int32Array(n);
  let o = 0;
  const put = (b: number, s: number, e: number): void => {
    bytes[o] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
    start[o] = s;
    end[o] = e;
    o++;
  };
  let i = 0;
  while (i < n) {
    const b = data[i] ?? 0;
    if (isBreak(b)) {
      const len = b === CR && data[i + 1] === LF ? 2 : 1;
      if (i > 0 && i + len < n && !isBreak(data[i - 1]) && !isBreak(data[i + len])) {
        i += len;
        continue;
      }
    }
    const decoded = !decode
      ? null
      : b === 0x25
        ? percentAt(data, i)
        : b === 0x5c
          ? jsonEscapeAt(data, i)
          : b === 0x26
            ? referenceAt(data, i)
            : null;
    if (decoded === null) {
      put(b, i, i + 1);
      i++;
      continue;
    }
    for (const d of decoded[0]) put(d, i, i + decoded[1]);
    i += decoded[1];
  }
  return { bytes: bytes.subarray(0, o), start: start.subarray(0, o), end: end.subarray(0, o) };
}

/** The needles as each view sees them. */
interface Patterns {
  literal: Buffer[];
  decoded: Buffer[];
  /** Longest pattern, in view bytes. */
  longest: number;
}

function patternsOf(needles: readonly string[]): Patterns {
  const forView = (decode: boolean): Buffer[] => {
    const seen = new Map<string, Buffer>();
    for (const n of needles) {
      const v = viewOf(Buffer.from(n, "utf8"), decode).bytes;
      if (v.length >= MIN_NEEDLE_CHARS) seen.set(v.toString("latin1"), Buffer.from(v));
    }
    return [...seen.values()];
  };
  const literal = forView(false);
  const decoded = forView(true);
  const longest = Math.max(0, ...literal.map((p) => p.length), ...decoded.map((p) => p.length));
  return { literal, decoded, longest };
}

const isBase64Byte = (b: number | undefined): boolean =>
  b !== undefined &&
  ((b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2b || b === 0x2f || b === 0x2d || b === 0x5f);

/**
 * Raw [start, end) ranges of `data` holding a needle in either view, overlapping ones merged, in
 * order. A needle made of base64 characters takes one more base64 character on each side: inside
 * a larger base64 document those characters carry some of the value's bits.
 */
function findSpans(data: Buffer, patterns: Patterns): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const [decode, list] of [
    [false, patterns.literal],
    [true, patterns.decoded],
  ] as const) {
    if (list.length === 0) continue;
    const view = viewOf(data, decode);
    for (const p of list) {
      const widen = BASE64_ALPHABET.test(p.toString("latin1"));
      for (let at = view.bytes.indexOf(p); at >= 0; at = view.bytes.indexOf(p, at + 1)) {
        let first = at;
        let last = at + p.length - 1;
        if (widen && first > 0 && isBase64Byte(view.bytes[first - 1])) first--;
        if (widen && last + 1 < view.bytes.length && isBase64Byte(view.bytes[last + 1])) last++;
        spans.push([view.start[first] ?? 0, view.end[last] ?? 0]);
      }
    }
  }
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: Array<[number, number]> = [];
  for (const s of spans) {
    const prev = merged.at(-1);
    if (prev !== undefined && s[0] < prev[1]) prev[1] = Math.max(prev[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged;
}

/** Replaces every needle (in any form the views see) in a complete string: a header, a URL, a message. */
export function redactString(text: string, needles: readonly string[]): { text: string; redacted: boolean } {
  const patterns = patternsOf(needles);
  const data = Buffer.from(text, "utf8");
  const spans = findSpans(data, patterns);
  if (spans.length === 0) return { text, redacted: false };
  const out: Buffer[] = [];
  let pos = 0;
  for (const [a, b] of spans) {
    out.push(data.subarray(pos, a), Buffer.from(REDACTION_MARK, "utf8"));
    pos = b;
  }
  out.push(data.subarray(pos));
  return { text: Buffer.concat(out).toString("utf8"), redacted: true };
}

export interface StreamRedactor {
  /** Takes the next chunk; returns what may be passed on now (all but the window; possibly empty). */
  push(chunk: Buffer): Buffer;
  /** Returns everything still held back, redacted; stops the timer. */
  end(): Buffer;
  /** Stops the timer without releasing anything (the call failed or was cancelled). */
  close(): void;
  /** True once anything was replaced. */
  readonly redacted: boolean;
  /**
   * True when a needle was completed by bytes that arrived after the timer had released its start
   * (the upstream paused in the middle of echoing a value): the rest was replaced, its start was not.
   */
  readonly split: boolean;
  /** Bytes held back now. */
  readonly pending: number;
}

export interface StreamRedactorOptions {
  /**
   * Bytes that have waited this long (ms) are released by a timer and handed to `onRelease`;
   * without it (tests of the transformation itself) bytes wait for the window or the end.
   */
  holdMs?: number;
  onRelease?: (data: Buffer) => void;
  /** The clock, in ms (default `performance.now`). */
  now?: () => number;
}

/**
 * A body redactor over `needles` (UTF-8), safe across chunk boundaries and no oracle: what it
 * passes on, and when, depends on the bytes' count and arrival times and on whole matches only,
 * never on whether the held-back bytes could begin a value (see the module comment).
 */
export function createStreamRedactor(needles: readonly string[], options: StreamRedactorOptions = {}): StreamRedactor {
  const patterns = patternsOf(needles);
  const mark = Buffer.from(REDACTION_MARK, "utf8");
  // Every match that starts before the window is whole and read the way the rest of the stream will read it.
  const needed = (patterns.longest + 2) * RAW_PER_VIEW_BYTE + LOOKAHEAD;
  const window = Math.ceil(needed / WINDOW_STEP) * WINDOW_STEP;
  const now = options.now ?? (() => performance.now());
  /** The last bytes passed on (as they came, before replacement), so a match across a timed release is seen. */
  let context = Buffer.alloc(0);
  let pending = Buffer.alloc(0);
  /** Arrival time of each pushed chunk, by the offset in `pending` where it ends. */
  let arrivals: Array<{ end: number; at: number }> = [];
  let redacted = false;
  let split = false;
  let timer: NodeJS.Timeout | null = null;

  /**
   * Passes on `pending` up to `upTo` (an offset in it; "window": all but the window) with every
   * match replaced. In window mode a match that would straddle the cut is held back whole; in
   * the other modes it is passed on whole (it is complete: it was found).
   */
  function release(upTo: number | "window"): Buffer {
    if (patterns.longest === 0) {
      const cut = upTo === "window" ? pending.length : upTo;
      const out = pending.subarray(0, cut);
      pending = pending.subarray(cut);
      return Buffer.from(out);
    }
    const data = context.length === 0 ? pending : Buffer.concat([context, pending]);
    const c = context.length;
    let cut = c + (upTo === "window" ? Math.max(0, pending.length - window) : upTo);
    const out: Buffer[] = [];
    let pos = c;
    for (const [a, b] of findSpans(data, patterns)) {
      if (b <= c) continue;
      if (a < c) {
        // Its start was passed on by the timer before the rest arrived: hide the rest.
        split = true;
      } else if (a >= cut) {
        break;
      } else if (b > cut && upTo === "window") {
        cut = a;
        break;
      }
      out.push(data.subarray(pos, Math.max(a, c)), mark);
      redacted = true;
      pos = b;
      cut = Math.max(cut, b);
    }
    out.push(data.subarray(pos, cut));
    const passed = data.subarray(0, cut);
    context = Buffer.from(passed.subarray(Math.max(0, passed.length - window)));
    pending = Buffer.from(data.subarray(cut));
    const releasedFromPending = cut - c;
    arrivals = arrivals.map((x) => ({ end: x.end - releasedFromPending, at: x.at })).filter((x) => x.end > 0);
    return Buffer.concat(out);
  }

  function stop(): void {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule(): void {
    const hold = options.holdMs;
    const first = arrivals[0];
    if (hold === undefined || options.onRelease === undefined || timer !== null || first === undefined) return;
    timer = setTimeout(
      () => {
        timer = null;
        const t = now();
        const due = arrivals.filter((x) => t - x.at >= hold).at(-1);
        const out = due === undefined ? Buffer.alloc(0) : release(Math.min(due.end, pending.length));
        if (out.length > 0) options.onRelease?.(out);
        schedule();
      },
      Math.max(0, first.at + hold - now()),
    );
  }

  return {
    push(chunk) {
      if (chunk.length === 0) return Buffer.alloc(0);
      pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
      arrivals.push({ end: pending.length, at: now() });
      const out = release("window");
      schedule();
      return out;
    },
    end() {
      stop();
      return release(pending.length);
    },
    close: stop,
    get redacted() {
      return redacted;
    },
    get split() {
      return split;
    },
    get pending() {
      return pending.length;
    },
  };
}

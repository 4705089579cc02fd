/**
 * Redaction of injected values in an upstream answer (issue 14 item 2). Every form in which an API
 * is likely to echo a credential is a needle: the value itself, its base64 and base64url forms, its
 * URL-encoded and form-encoded forms, its JSON-escaped form, and for `basic` the `user:password`
 * base64 and the password alone. Bodies are redacted as a stream: a match split across chunks is
 * still found, because the redactor holds back the shortest tail that could begin a needle (and
 * nothing more, so a streamed event is passed on as soon as it cannot hide a value).
 */
import { REDACTION_MARK } from "../../../shared/calls.js";

/** Shortest value worth redacting: shorter ones would shred ordinary text. */
const MIN_NEEDLE_CHARS = 4;
/** The user part of a basic `user:password` value is redacted on its own from this length. */
const BASIC_PART_MIN_CHARS = 8;

/**
 * The byte strings to look for when `value` was injected: the value, its base64 (padded, unpadded,
 * base64url), URL and form encodings, JSON string escaping, and JSON with `/` escaped as `\/` (PHP's
 * json_encode and others). `basic` marks a `user:password` value, whose password alone and user
 * alone are also redacted — the user part is the secret with some APIs (Stripe's `sk_…:`) — when
 * that part has at least 8 characters, so a short user name such as `admin` is not blanked out of
 * every answer. Needles shorter than 4 characters are skipped.
 *
 * Known limits: an encoding of a larger document that contains the value (base64 of a JSON body at
 * an offset, as in a JWT) and hexadecimal forms are not recognised.
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

/** Replaces every needle in a header value (or any complete string). */
export function redactString(text: string, needles: readonly string[]): { text: string; redacted: boolean } {
  let out = text;
  // Longest first, so a value's base64 is not half-replaced by a shorter form inside it.
  for (const n of [...needles].sort((a, b) => b.length - a.length)) if (out.includes(n)) out = out.split(n).join(REDACTION_MARK);
  return { text: out, redacted: out !== text };
}

export interface StreamRedactor {
  /** Redacts the next chunk; returns what may be passed on now (possibly empty). */
  push(chunk: Buffer): Buffer;
  /** Returns what was held back, redacted. */
  end(): Buffer;
  /** True once anything was replaced. */
  readonly redacted: boolean;
}

/** A body redactor over the given needles (UTF-8), safe across chunk boundaries. */
export function createStreamRedactor(needles: readonly string[]): StreamRedactor {
  const patterns = [...new Set(needles)].map((n) => Buffer.from(n, "utf8")).sort((a, b) => b.length - a.length);
  const mark = Buffer.from(REDACTION_MARK, "utf8");
  let tail = Buffer.alloc(0);
  let redacted = false;

  /** The earliest full match at or after `from`, the longest at that position. */
  function nextMatch(data: Buffer, from: number): { at: number; length: number } | null {
    let best: { at: number; length: number } | null = null;
    for (const p of patterns) {
      const at = data.indexOf(p, from);
      if (at >= 0 && (best === null || at < best.at)) best = { at, length: p.length };
    }
    return best;
  }

  /** Length of the longest suffix of `data` (after `from`) that is a proper prefix of a needle. */
  function heldBack(data: Buffer, from: number): number {
    let keep = 0;
    for (const p of patterns) {
      const max = Math.min(p.length - 1, data.length - from);
      for (let k = max; k > keep; k--) {
        if (data.compare(p, 0, k, data.length - k, data.length) === 0) {
          keep = k;
          break;
        }
      }
    }
    return keep;
  }

  /** Could a needle longer than `length` that starts at `at` still be completed by the next chunk? */
  function mayGrow(data: Buffer, at: number, length: number): boolean {
    const have = data.length - at;
    return patterns.some((p) => p.length > length && p.length > have && data.compare(p, 0, have, at, data.length) === 0);
  }

  /** Redacts `data`; unless `final`, keeps back what could still become (a longer) needle. */
  function run(data: Buffer, final: boolean): Buffer {
    const out: Buffer[] = [];
    let pos = 0;
    for (let m = nextMatch(data, pos); m !== null; m = nextMatch(data, pos)) {
      // A value's padded base64 starts with its unpadded form: wait to see which one it is.
      if (!final && mayGrow(data, m.at, m.length)) break;
      out.push(data.subarray(pos, m.at), mark);
      pos = m.at + m.length;
      redacted = true;
    }
    const keep = final ? 0 : heldBack(data, pos);
    out.push(data.subarray(pos, data.length - keep));
    tail = Buffer.from(data.subarray(data.length - keep));
    return Buffer.concat(out);
  }

  return {
    push(chunk) {
      if (patterns.length === 0) return chunk;
      return run(tail.length === 0 ? chunk : Buffer.concat([tail, chunk]), false);
    },
    end() {
      return run(tail, true);
    },
    get redacted() {
      return redacted;
    },
  };
}

/**
 * Showing text an agent chose (its name, client ID, reason, variable) to a person, in a terminal or
 * in the window. An agent can put terminal escape sequences, carriage returns or bidi overrides into
 * its `hello` name (issue 16 item 6: `"Build Bot\u001b[2K\r\u001b[32mSystem Updater\u001b[0m"` erased
 * the line and printed a fake name over the request id), so such characters are shown as visible
 * `\u{..}` escapes and the text is cut to a length limit. Pure: no I/O, usable by CLI and renderer.
 */

/** Default length limit, in characters of the shown text (escapes count with their full length). */
export const DISPLAY_TEXT_MAX = 120;

/**
 * True for code points that must not reach a terminal or a page raw: C0 controls (U+0000-U+001F),
 * DEL and C1 controls (U+007F-U+009F), the bidi marks, embeddings, overrides and isolates
 * (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), the line/paragraph separators
 * (U+2028, U+2029), which some renderers treat as line breaks, and the invisible zero-width
 * characters (U+200B-U+200D, U+2060, U+FEFF), which can make two different names look the same.
 */
function isHidden(cp: number): boolean {
  return (
    cp <= 0x1f ||
    (cp >= 0x7f && cp <= 0x9f) ||
    cp === 0x061c ||
    (cp >= 0x200b && cp <= 0x200f) ||
    cp === 0x2060 ||
    cp === 0xfeff ||
    (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069)
  );
}

/**
 * `text` as it may be shown: every hidden code point (see `isHidden`) becomes `\u{hex}` (lower-case
 * hex, e.g. ESC -> `\u{1b}`), and when the result is longer than `max` characters it is cut at a code
 * point boundary, never inside an escape, and ends with `…` (the result is then at most `max`
 * characters long). `max` below 1 is treated as 1.
 */
export function displayText(text: string, max: number = DISPLAY_TEXT_MAX): string {
  const limit = Math.max(1, Math.floor(max));
  const pieces: string[] = [];
  let length = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    pieces.push(isHidden(cp) ? `\\u{${cp.toString(16)}}` : ch);
    length += (pieces[pieces.length - 1] ?? "").length;
  }
  if (length <= limit) return pieces.join("");
  let out = "";
  for (const piece of pieces) {
    // One character is kept for the ellipsis.
    if (out.length + piece.length > limit - 1) break;
    out += piece;
  }
  return `${out}…`;
}

/** `displayText` for optional values: null and undefined stay null. */
export function displayOptional(text: string | null | undefined, max: number = DISPLAY_TEXT_MAX): string | null {
  return text === null || text === undefined ? null : displayText(text, max);
}

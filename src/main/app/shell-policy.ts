/**
 * Pure policies of the Electron shell (DESIGN.md section 7), kept free of any Electron import so
 * tests run them directly: which URLs may open in the system browser, which page may call the IPC
 * API or be navigated to, and how a passkey step is handed to the system browser.
 */
import type { LinkApi } from "../../shared/control.js";
import { passkeyOrigin } from "../../shared/passkeys.js";

/**
 * The authority's sign-in pages, the only pages a page may have opened in the system browser: the
 * OAuth authorization endpoint (browser sign-in, RFC 8252) and the device page (RFC 8628). (The
 * shell itself opens one more, the passkey step: `openPasskeyStepInBrowser`.)
 */
export const SIGN_IN_PATHS: ReadonlySet<string> = new Set(["/oauth/authorize", "/device"]);

/**
 * Where the sign-in pages of this Link's authority are shown (issue 15 item 3): for the embedded
 * authority the Link's own origin `http://127.0.0.1:<port>` (it forwards them over the pinned
 * connection, so the browser never meets the self-signed certificate); for a remote authority its
 * own origin; null without an authority. Takes the Link's status (`port`, `authority`).
 */
export function signInPagesOrigin(status: {
  port: number;
  authority: { url: string; mode: "embedded" | "remote" } | null;
}): string | null {
  if (status.authority === null) return null;
  return status.authority.mode === "embedded"
    ? `http://127.0.0.1:${status.port}`
    : new URL(status.authority.url).origin;
}

/**
 * True when `target` is one of the authority's sign-in pages: it parses as a URL whose origin
 * (scheme, host, port) equals `pagesOrigin`'s (see `signInPagesOrigin`: the Link's own origin for
 * the embedded authority) and whose pathname is exactly one of `SIGN_IN_PATHS` (query allowed, so
 * `/device?user_code=…` passes; `/device-x` or `/oauth/authorize/../x` do not). False for anything
 * unparsable, and when there is no authority (`null`).
 */
export function isAuthoritySignInUrl(target: string, pagesOrigin: string | null): boolean {
  if (pagesOrigin === null) return false;
  try {
    const url = new URL(target);
    if (url.username !== "" || url.password !== "") return false;
    return url.origin === new URL(pagesOrigin).origin && SIGN_IN_PATHS.has(url.pathname);
  } catch {
    return false;
  }
}

/**
 * True when `url` is the window's own page, `ownPageUrl` (what the shell loaded: the renderer's
 * `file:` index in a build, the dev server's URL in development). For `file:` the path must be
 * the same file; for `http(s):` the origin must be the same. Query and fragment are ignored (the
 * window routes by fragment). Used for IPC sender frames and for `will-navigate`; false for
 * anything unparsable.
 */
export function isOwnPageUrl(url: string | undefined, ownPageUrl: string): boolean {
  if (url === undefined || url === "") return false;
  try {
    const got = new URL(url);
    const own = new URL(ownPageUrl);
    if (got.protocol !== own.protocol) return false;
    // The app's own scheme (app-protocol.ts) and file: have no origin of their own: the exact page.
    if (own.protocol === "file:" || own.protocol === "app:")
      return got.host === own.host && got.pathname === own.pathname;
    return (own.protocol === "http:" || own.protocol === "https:") && got.origin === own.origin;
  } catch {
    return false;
  }
}

/**
 * The address where the person takes a passkey step: the Link's browser UI at
 * `http://localhost:<port>/ui/#code=<code>` (`passkeyOrigin`), with a single-use code from
 * `uiLoginCode` in the fragment (never sent to a server). localhost, not 127.0.0.1: the passkeys'
 * RP ID is `localhost`, which browsers accept only on a localhost origin.
 */
export function passkeyStepAddress(port: number, code: string): string {
  return `${passkeyOrigin(port)}/ui/#code=${encodeURIComponent(code)}`;
}

/**
 * Hands a passkey step (registering a passkey, or a passkey proof for an approval) to the system
 * browser, which has the WebAuthn UI Electron lacks on Linux (no platform authenticator, no
 * security-key or PIN prompt) and whose page is on the origin the passkeys belong to (the window's
 * own page is a `file:` URL, where RP ID `localhost` is refused on every platform). Asks the Link
 * for a single-use UI code (valid 60 s) and opens `passkeyStepAddress(port, code)` with
 * `openExternal` (`shell.openExternal`). Returns the address opened; rejects with what
 * `uiLoginCode` or `openExternal` reject with.
 */
export async function openPasskeyStepInBrowser(deps: {
  port: number;
  api: Pick<LinkApi, "uiLoginCode">;
  openExternal(url: string): Promise<void>;
}): Promise<string> {
  const { code } = await deps.api.uiLoginCode({});
  const url = passkeyStepAddress(deps.port, code);
  await deps.openExternal(url);
  return url;
}

/**
 * Chromium and Node switches that let another program drive or read the app: a remote debugging
 * port or pipe (Chrome DevTools Protocol: click Approve inside the real page, watch the PIN being
 * typed) and Node's inspector. No Electron fuse turns the first two off, so a packaged app refuses
 * to start with any of them.
 */
export const DEBUGGING_SWITCHES: readonly string[] = [
  "remote-debugging-port",
  "remote-debugging-pipe",
  "remote-debugging-address",
  "inspect",
  "inspect-brk",
  "inspect-port",
  "inspect-wait",
  "inspect-brk-node",
  "debug",
  "debug-brk",
];

/** The parts of Electron's `app.commandLine` the check reads. */
export interface SwitchReader {
  hasSwitch(name: string): boolean;
  getSwitchValue(name: string): string;
}

/**
 * The first debugging switch this process was started with, as written, or null: from Chromium's
 * parsed command line (`commandLine.hasSwitch`) and from `argv` itself, where Chromium also accepts
 * a single dash (`-remote-debugging-port=9222`) and any `--inspect…`/`--debug…` spelling counts;
 * `--js-flags` that mention the inspector or debugger count too. `argv` is read up to `--`.
 */
export function debuggingSwitch(commandLine: SwitchReader, argv: readonly string[]): string | null {
  for (const name of DEBUGGING_SWITCHES) if (commandLine.hasSwitch(name)) return `--${name}`;
  if (commandLine.hasSwitch("js-flags") && /inspect|debug/i.test(commandLine.getSwitchValue("js-flags")))
    return `--js-flags=${commandLine.getSwitchValue("js-flags")}`;
  for (const arg of argv.slice(1)) {
    if (arg === "--") break;
    const name = /^--?([^=]+)/.exec(arg)?.[1]?.toLowerCase().replaceAll("_", "-");
    if (name === undefined) continue;
    if (/^(remote-debugging-|inspect|debug)/.test(name)) return arg;
    if (name === "js-flags" && /inspect|debug/i.test(arg)) return arg;
  }
  return null;
}

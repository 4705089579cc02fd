/**
 * Pure policies of the Electron shell (DESIGN.md section 7), kept free of any Electron import so
 * tests run them directly: which URLs may open in the system browser, and which page may call the
 * IPC API or be navigated to.
 */

/**
 * The authority's sign-in pages, the only pages `shell.openExternal` may open: the OAuth
 * authorization endpoint (browser sign-in, RFC 8252) and the device page (RFC 8628).
 */
export const SIGN_IN_PATHS: ReadonlySet<string> = new Set(["/oauth/authorize", "/device"]);

/**
 * True when `target` is one of the authority's sign-in pages: it parses as a URL whose origin
 * (scheme, host, port) equals `authorityUrl`'s and whose pathname is exactly one of `SIGN_IN_PATHS`
 * (query allowed, so `/device?user_code=…` passes; `/device-x` or `/oauth/authorize/../x` do not).
 * False for anything unparsable, and when there is no authority (`null`).
 */
export function isAuthoritySignInUrl(target: string, authorityUrl: string | null): boolean {
  if (authorityUrl === null) return false;
  try {
    const url = new URL(target);
    if (url.username !== "" || url.password !== "") return false;
    return url.origin === new URL(authorityUrl).origin && SIGN_IN_PATHS.has(url.pathname);
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
    if (own.protocol === "file:") return got.host === own.host && got.pathname === own.pathname;
    return (own.protocol === "http:" || own.protocol === "https:") && got.origin === own.origin;
  } catch {
    return false;
  }
}

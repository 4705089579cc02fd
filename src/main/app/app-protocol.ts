/**
 * The window's own scheme. A packaged app's renderer lives inside app.asar; Electron serves it over
 * file:// with module scripts only when the `grantFileProtocolExtraPrivileges` fuse is on, and that
 * fuse (which DESIGN.md section 7 turns off) would give every file:// page fetch access to the whole
 * disk. Electron's security checklist (item "use a custom protocol instead of file://") serves local
 * pages through a privileged custom scheme instead: `app://piper-link/<path>` maps to a file of the
 * built renderer and to nothing outside it.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { ElectronApi } from "./electron-api.js";
import { CSP } from "./window.js";

/** The scheme and host of the window's page: `app://piper-link/index.html`. */
export const APP_SCHEME = "app";
export const APP_HOST = "piper-link";
export const APP_PAGE_URL = `${APP_SCHEME}://${APP_HOST}/index.html`;

/**
 * Declares the scheme before the app is ready (Electron allows it only then): `standard` so relative
 * URLs and origins work like https, `secure` so the page is a secure context, `supportFetchAPI` for
 * the renderer's module loads. No `bypassCSP`, no `corsEnabled` for other origins.
 */
export function registerAppScheme(protocol: ElectronApi["protocol"]): void {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
}

/**
 * The file under `rendererDir` that `url` names, or null: another host, a path that leaves the
 * folder after decoding (`%2e%2e%2f`, an encoded slash or backslash), a NUL byte, or an unparsable
 * URL. `/` means index.html; the fragment (the window's routes) and query are ignored.
 */
export function appFileFor(url: string, rendererDir: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== `${APP_SCHEME}:` || parsed.host !== APP_HOST) return null;
  let decoded: string;
  try {
    decoded = decodeURIComponent(parsed.pathname);
  } catch {
    return null;
  }
  if (decoded.includes("\0") || decoded.includes("\\") || /%2f|%5c/i.test(parsed.pathname)) return null;
  const relative = decoded === "/" ? "index.html" : decoded.replace(/^\/+/, "");
  const root = path.resolve(rendererDir);
  const file = path.resolve(root, relative);
  const inside = path.relative(root, file);
  if (inside === "" || inside.startsWith("..") || path.isAbsolute(inside)) return null;
  return file;
}

/**
 * Serves `app://piper-link/…` from `rendererDir` (call once the app is ready): GET and HEAD only,
 * each file through Electron's own `net.fetch` of its file:// URL (which reads inside app.asar and
 * sets the content type), with the window's CSP on every answer. Anything `appFileFor` refuses is a
 * 404 with no body; other methods are 405.
 */
export function serveAppScheme(electron: Pick<ElectronApi, "protocol" | "net">, rendererDir: string): void {
  electron.protocol.handle(APP_SCHEME, async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD")
      return new Response(null, { status: 405, headers: { Allow: "GET, HEAD" } });
    const file = appFileFor(request.url, rendererDir);
    if (file === null) return new Response(null, { status: 404 });
    let answer: Response;
    try {
      answer = await electron.net.fetch(pathToFileURL(file).href);
    } catch {
      return new Response(null, { status: 404 });
    }
    const headers = new Headers(answer.headers);
    headers.set("Content-Security-Policy", CSP);
    headers.set("X-Content-Type-Options", "nosniff");
    return new Response(request.method === "HEAD" ? null : answer.body, { status: answer.status, headers });
  });
}

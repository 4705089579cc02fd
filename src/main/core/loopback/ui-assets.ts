/**
 * The browser UI of the headless Link: the same React build the Electron window loads
 * (`out/renderer`), served under `/ui/` by the loopback server with a strict CSP. The page holds no
 * secret: it reads the control token from its URL fragment, which browsers never send to a server,
 * so the token appears in no request line and no log.
 */
import fs from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { pathOf, type StackFailure } from "./loopback-http.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
};

/** Only flat file names inside assets/: no traversal, no dot files. */
const ASSET = /^\/ui\/assets\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}$/;

export function uiContentSecurityPolicy(port: number): string {
  // No ws://[::1]:port: CSP host sources cannot be IPv6 literals (Chromium logs the source as
  // invalid on every load); the page reaches the Link at the 127.0.0.1/localhost address it came from.
  const sockets = [`ws://127.0.0.1:${port}`, `ws://localhost:${port}`].join(" ");
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** `dir` when the UI was built there (it has index.html), else null (the Link then says how to build it). */
export async function builtUiDir(dir: string): Promise<string | null> {
  try {
    await fs.access(path.join(dir, "index.html"));
    return dir;
  } catch {
    return null;
  }
}

/**
 * Adds the window's routes to the loopback server: `/` and `/ui` redirect to `/ui/`, which serves
 * index.html; `/ui/assets/<name>` serves a built asset (flat names only: no traversal, no dot files).
 * `port()` is the listener's port, for the CSP's connect-src. Unknown names are 404 `not_found`.
 */
export function addUiRoutes(
  app: FastifyInstance,
  uiDir: string | null,
  port: () => number,
  refuse: (request: FastifyRequest, reply: FastifyReply, failure: StackFailure) => FastifyReply,
): void {
  const toUi = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
    reply.code(302).header("Location", "/ui/").send();
  app.get("/", toUi);
  app.get("/ui", toUi);
  app.get("/ui/*", async (request, reply) => {
    // The raw path, not the router's decoded parameter: `%2F` or `..` never name a file.
    const pathname = pathOf(request.raw.url);
    if (uiDir === null) {
      return refuse(request, reply, {
        status: 404,
        code: "not_found",
        message: "The browser UI is not built in this install; run `npm run build:electron`.",
      });
    }
    const file =
      pathname === "/ui/" || pathname === "/ui/index.html"
        ? "index.html"
        : ASSET.test(pathname)
          ? pathname.slice("/ui/".length)
          : null;
    if (file === null)
      return refuse(request, reply, {
        status: 404,
        code: "not_found",
        message: `No such page: ${pathname.slice(0, 200)}`,
      });
    let body: Buffer;
    try {
      body = await fs.readFile(path.join(uiDir, file));
    } catch {
      return refuse(request, reply, { status: 404, code: "not_found", message: `No such file: ${file}` });
    }
    return reply
      .code(200)
      .header("Content-Type", TYPES[path.extname(file)] ?? "application/octet-stream")
      .header("Content-Security-Policy", uiContentSecurityPolicy(port()))
      .send(body);
  });
}

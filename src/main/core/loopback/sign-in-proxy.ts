/**
 * The embedded authority's sign-in pages on the Link's own loopback origin (issue 15 item 3). The
 * embedded authority serves HTTPS with a self-signed certificate that only the Link trusts (it pins
 * the fingerprint); a person's browser would say "Your connection is not private". So the Link
 * forwards the few pages a person sees — `/oauth/authorize`, `/login`, `/signup`, `/device` — from
 * `http://127.0.0.1:<link port>` to the authority over the pinned connection. Browsers treat
 * http://127.0.0.1 as a secure context, and it is the address that works through the documented
 * SSH port forward (`ssh -L 31477:127.0.0.1:31477 host`).
 *
 * Rules of the forward (why each one):
 * - Only these paths, GET (and POST for the three forms, URL-encoded, at most 16 KiB): nothing else
 *   of the authority (token endpoint, Link API) is reachable through the Link's port.
 * - The loopback guard runs first, as for every request: a foreign `Host` (DNS rebinding) or an
 *   `Origin` other than the Link's own (a cross-site form post) is refused before anything is sent
 *   on. The authority's double-submit CSRF token still guards every form as well.
 * - Only the authority's own cookies (`piper_session`, `piper_csrf`) go up; other cookies a browser
 *   holds for 127.0.0.1 (cookies ignore ports) stay behind. On the way back their `Secure` flag is
 *   dropped, because the page is now plain http (a browser could refuse a Secure cookie there), and
 *   only those two names may be set. This is the documented rule instead of trusting a header.
 * - Redirects of the authority are relative (`/login?next=…`) and so stay on the Link's origin; an
 *   absolute one naming the authority's own origin is rewritten to the Link's; any other (the
 *   loopback callback of the sign-in) passes unchanged.
 * - The answer carries the Link's security headers and its own CSP for these pages (no script, forms
 *   only to this origin or a loopback callback), and `Referrer-Policy: same-origin`: with
 *   `no-referrer` a browser sends `Origin: null` on a form post, which the guard would refuse.
 * - Only for the embedded authority: a remote authority keeps its own https pages (a real
 *   certificate), and `target()` answers null for it, so these paths are then 404.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Agent, request, type buildConnector, type Dispatcher } from "undici";
import { frameworkFailure, type StackFailure } from "./loopback-http.js";

/** The embedded authority as the Link reaches it: base URL and pinned certificate fingerprint. */
export interface SignInProxyTarget {
  url: string;
  pin: string;
}

export interface SignInProxyOptions {
  /** The embedded authority now (it may move after a restart), or null: no pages to serve. */
  target(): SignInProxyTarget | null;
  /**
   * The TLS connector that trusts exactly the certificate with this SHA-256 fingerprint (the
   * authority client's `pinnedConnector`, handed in so the loopback room need not import authority/).
   */
  pinnedConnector(pin: string): buildConnector.connector;
  /** Time for the authority's whole answer (default 15 s; signing up runs a memory-hard KDF). */
  timeoutMs?: number;
}

/** Paths served, and whether a form posts to them. The pages' links and forms use exactly these. */
export const SIGN_IN_PAGE_PATHS: ReadonlyMap<string, { post: boolean }> = new Map([
  ["/oauth/authorize", { post: false }],
  ["/login", { post: true }],
  ["/signup", { post: true }],
  ["/device", { post: true }],
]);

/** The authority's cookies; no other cookie is forwarded or accepted back. */
const AUTHORITY_COOKIES: ReadonlySet<string> = new Set(["piper_session", "piper_csrf"]);

/** Same as the authority's form body limit (src/server/oauth-routes.ts). */
const MAX_FORM_BYTES = 16 * 1024;

/** The CSP of the proxied pages: no scripts, inline styles only, forms to this origin or a loopback callback (RFC 8252). */
export const SIGN_IN_PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'; base-uri 'none'";

export interface SignInProxy {
  /**
   * Adds the pages' routes to the loopback server (`SIGN_IN_PAGE_PATHS`; the guard of its one hook
   * has already refused foreign hosts and origins). Without an embedded authority they answer 404.
   */
  addRoutes(app: FastifyInstance, refuse: Refuse): void;
  close(): Promise<void>;
}

type Refuse = (request: FastifyRequest, reply: FastifyReply, failure: StackFailure) => FastifyReply;

/**
 * Creates the forwarder. Errors never throw: a refused method or body is a JSON error answer, an
 * unreachable authority a 502 in the Link's error shape.
 */
export function createSignInProxy(options: SignInProxyOptions): SignInProxy {
  const timeoutMs = options.timeoutMs ?? 15_000;
  let pool: { key: string; agent: Agent } | null = null;

  /** One pinned connection pool per authority address and certificate; replaced when either changes. */
  function agentFor(target: SignInProxyTarget): Agent {
    const key = `${target.url}\u0000${target.pin}`;
    if (pool?.key === key) return pool.agent;
    void pool?.agent.close().catch(() => undefined);
    pool = {
      key,
      agent: new Agent({ connect: options.pinnedConnector(target.pin), keepAliveTimeout: 10_000, connections: 8 }),
    };
    return pool.agent;
  }

  async function forward(
    req: FastifyRequest,
    reply: FastifyReply,
    refuse: Refuse,
    pathname: string,
  ): Promise<FastifyReply> {
    const target = options.target();
    if (target === null)
      return refuse(req, reply, { status: 404, code: "not_found", message: `No such endpoint: ${pathname}` });
    const method = req.method;
    const headers: Record<string, string> = { accept: "text/html" };
    const cookies = authorityCookies(req.headers.cookie);
    if (cookies !== "") headers["cookie"] = cookies;
    let body: Buffer | null = null;
    if (method === "POST") {
      // The scope's only parser is URL-encoded forms of at most MAX_FORM_BYTES (415 / 413 otherwise).
      if (!Buffer.isBuffer(req.body))
        return refuse(req, reply, {
          status: 415,
          code: "unsupported_media_type",
          message: "Sign-in forms are sent URL-encoded.",
        });
      body = req.body;
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const base = new URL(target.url);
    const url = new URL(req.url, base);
    // Only the path and query of the request line are kept: the authority is always `target`.
    const upstream = new URL(`${url.pathname}${url.search}`, base);
    let answer: Dispatcher.ResponseData;
    let text: Buffer;
    try {
      answer = await request(upstream, {
        method: method === "HEAD" ? "GET" : method === "POST" ? "POST" : "GET",
        headers,
        body,
        dispatcher: agentFor(target),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = Buffer.from(await answer.body.arrayBuffer());
    } catch {
      return refuse(req, reply, {
        status: 502,
        code: "authority_unavailable",
        message: "Piper Link cannot reach its embedded authority right now; try again in a moment.",
      });
    }
    void reply
      .code(answer.statusCode)
      .header("Referrer-Policy", "same-origin")
      .header("Content-Security-Policy", SIGN_IN_PAGE_CSP)
      .header("Content-Type", headerText(answer.headers["content-type"]) ?? "text/html; charset=utf-8");
    const location = headerText(answer.headers["location"]);
    if (location !== null) void reply.header("Location", rewriteLocation(location, base));
    const setCookies = rewriteSetCookies(answer.headers["set-cookie"]);
    if (setCookies.length > 0) void reply.header("Set-Cookie", setCookies);
    return reply.send(text);
  }

  return {
    addRoutes(app, refuse) {
      void app.register((scope, _options, done) => {
        // Forms only: no JSON or text parser in this scope, and nothing larger than a sign-in form.
        scope.removeAllContentTypeParsers();
        // The body errors in a sign-in form's words; anything else as the stack says it.
        scope.setErrorHandler((err: FastifyError, request, reply) => {
          const failure = frameworkFailure(err);
          if (failure.code === "payload_too_large")
            return refuse(request, reply, { ...failure, message: "This form is larger than a sign-in form can be." });
          if (failure.code === "unsupported_media_type")
            return refuse(request, reply, { ...failure, message: "Sign-in forms are sent URL-encoded." });
          return refuse(request, reply, failure);
        });
        scope.addContentTypeParser(
          "application/x-www-form-urlencoded",
          { parseAs: "buffer", bodyLimit: MAX_FORM_BYTES },
          (_request, body, done) => done(null, body),
        );
        for (const [pathname, rule] of SIGN_IN_PAGE_PATHS) {
          scope.route({
            method: rule.post ? ["GET", "POST"] : ["GET"],
            url: pathname,
            config: { ownOrigin: true },
            handler: (request, reply) => forward(request, reply, refuse, pathname),
          });
        }
        done();
      });
    },
    async close() {
      const current = pool;
      pool = null;
      await current?.agent.close().catch(() => undefined);
    },
  };
}

/** The `Cookie` header reduced to the authority's own cookies (`name=value; …`). */
export function authorityCookies(header: string | undefined): string {
  if (header === undefined) return "";
  return header
    .split(";")
    .map((part) => part.trim())
    .filter((pair) => AUTHORITY_COOKIES.has(pair.slice(0, Math.max(0, pair.indexOf("=")))))
    .join("; ");
}

/**
 * The authority's `Set-Cookie` lines for the Link's http origin: only its own cookie names, and
 * without the `Secure` attribute (a Secure cookie set from plain http may be refused). Everything
 * else (HttpOnly, SameSite, Path, Max-Age) is kept.
 */
export function rewriteSetCookies(raw: string | string[] | undefined): string[] {
  const lines = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return lines
    .filter((line) => AUTHORITY_COOKIES.has(line.slice(0, Math.max(0, line.indexOf("="))).trim()))
    .map((line) =>
      line
        .split(";")
        .filter((attr, i) => i === 0 || attr.trim().toLowerCase() !== "secure")
        .join(";"),
    );
}

/**
 * A redirect of the authority as the browser should follow it: relative ones stay relative (so on
 * the Link's origin), one naming the authority's own origin loses that origin, any other (the
 * sign-in's loopback callback) is unchanged.
 */
export function rewriteLocation(location: string, authority: URL): string {
  if (location.startsWith("/") && !location.startsWith("//")) return location;
  try {
    const url = new URL(location);
    return url.origin === authority.origin ? `${url.pathname}${url.search}` : location;
  } catch {
    return location;
  }
}

function headerText(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
}

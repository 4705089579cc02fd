/**
 * HTTP routes for accounts and OAuth: the sign-in/sign-up/device pages (CSRF by double-submit
 * cookie, sessions in HttpOnly SameSite cookies) and the protocol endpoints `/oauth/authorize`,
 * `/oauth/token`, `/oauth/device_authorization`, `/oauth/revoke`.
 */
import { timingSafeEqual, randomBytes } from "node:crypto";
import cookie from "@fastify/cookie";
import formbody from "@fastify/formbody";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { LINK_CLIENT_ID, type DeviceAuthorization } from "../shared/authority.js";
import { AuthorityRoutes } from "../shared/authority-routes.js";
import { isLoopbackRedirect, type OAuthService } from "./oauth.js";
import { devicePage, messagePage, signInPage, signUpPage } from "./pages.js";
import { ServiceError } from "./service/index.js";

const SESSION = "piper_session";
const CSRF = "piper_csrf";
const PAGE_HEADERS = {
  "Content-Type": "text/html; charset=utf-8",
  "Content-Security-Policy":
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'; base-uri 'none'",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
};

const AuthorizeQuery = z.object({
  response_type: z.string(),
  client_id: z.string(),
  redirect_uri: z.string(),
  state: z.string().max(512).optional(),
  code_challenge: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43}$/)
    .optional(),
  code_challenge_method: z.string().optional(),
  scope: z.string().optional(),
});

const Form = z.record(z.string(), z.string());

/** Only same-site paths may be a `next` target (no open redirects). */
function safeNext(next: unknown): string {
  return typeof next === "string" && /^\/(oauth\/authorize\?|device)/.test(next) && !next.startsWith("//")
    ? next
    : "/device";
}

function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/**
 * Registers the sign-in pages and OAuth endpoints on `app`. `onRevoked` runs after `/oauth/revoke`
 * revoked something, so the caller can end event streams opened with that token at once.
 */
export function registerOAuthRoutes(
  app: FastifyInstance,
  oauth: OAuthService,
  secure: boolean,
  onRevoked: () => void = () => undefined,
): void {
  void app.register(cookie);
  void app.register(formbody, { bodyLimit: 16 * 1024 });
  const cookieOpts = { path: "/", httpOnly: true, sameSite: "lax" as const, secure };

  function csrfFor(req: FastifyRequest, reply: FastifyReply): string {
    const existing = req.cookies[CSRF];
    if (existing) return existing;
    const token = randomBytes(24).toString("base64url");
    void reply.setCookie(CSRF, token, { ...cookieOpts, sameSite: "strict" });
    return token;
  }

  function checkCsrf(req: FastifyRequest, form: Record<string, string>): void {
    if (!sameToken(form["csrf"], req.cookies[CSRF]))
      throw new ServiceError(403, "invalid_csrf", "This form expired. Reload the page and try again.");
  }

  const html = (reply: FastifyReply, status: number, body: string): FastifyReply =>
    reply.status(status).headers(PAGE_HEADERS).send(body);

  async function startSession(reply: FastifyReply, userId: string): Promise<void> {
    const s = await oauth.createSession(userId);
    void reply.setCookie(SESSION, s.id, { ...cookieOpts, maxAge: 12 * 3600 });
  }

  app.get("/login", async (req, reply) => {
    const next = safeNext((req.query as Record<string, unknown>)["next"]);
    if ((await oauth.accountCount()) === 0) return reply.redirect(`/signup?next=${encodeURIComponent(next)}`, 303);
    return html(reply, 200, signInPage({ csrf: csrfFor(req, reply), next, error: null }));
  });

  app.post("/login", async (req, reply) => {
    const form = Form.parse(req.body ?? {});
    const next = safeNext(form["next"]);
    try {
      checkCsrf(req, form);
      const userId = await oauth.signIn(form["email"] ?? "", form["password"] ?? "", req.ip);
      await startSession(reply, userId);
      return await reply.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return html(
        reply,
        err.status,
        signInPage({ csrf: csrfFor(req, reply), next, error: err.message, email: form["email"] ?? "" }),
      );
    }
  });

  app.get("/signup", async (req, reply) => {
    const next = safeNext((req.query as Record<string, unknown>)["next"]);
    return html(
      reply,
      200,
      signUpPage({ csrf: csrfFor(req, reply), next, error: null, firstRun: (await oauth.accountCount()) === 0 }),
    );
  });

  app.post("/signup", async (req, reply) => {
    const form = Form.parse(req.body ?? {});
    const next = safeNext(form["next"]);
    try {
      checkCsrf(req, form);
      const userId = await oauth.signUp(form["email"] ?? "", form["password"] ?? "", form["name"] ?? "");
      await startSession(reply, userId);
      return await reply.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return html(
        reply,
        err.status,
        signUpPage({
          csrf: csrfFor(req, reply),
          next,
          error: err.message,
          firstRun: (await oauth.accountCount()) === 0,
          email: form["email"] ?? "",
          name: form["name"] ?? "",
        }),
      );
    }
  });

  app.get("/oauth/authorize", async (req, reply) => {
    const q = AuthorizeQuery.safeParse(req.query);
    // Errors about the client or redirect URI are shown here, never sent to an unverified redirect.
    if (!q.success || q.data.client_id !== LINK_CLIENT_ID || !isLoopbackRedirect(q.data.redirect_uri)) {
      return html(
        reply,
        400,
        messagePage(
          "Invalid sign-in request",
          "This sign-in link is not valid for Piper Link. Start again from Piper Link.",
        ),
      );
    }
    const back = (params: Record<string, string>): FastifyReply => {
      const url = new URL(q.data.redirect_uri);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      if (q.data.state !== undefined) url.searchParams.set("state", q.data.state);
      return reply.redirect(url.toString(), 303);
    };
    if (q.data.response_type !== "code") return back({ error: "unsupported_response_type" });
    if (q.data.code_challenge === undefined || q.data.code_challenge_method !== "S256") {
      return back({ error: "invalid_request", error_description: "PKCE with code_challenge_method=S256 is required." });
    }
    const session = await oauth.session(req.cookies[SESSION]);
    if (session === null) {
      const next = `/oauth/authorize?${new URLSearchParams(req.query as Record<string, string>).toString()}`;
      return reply.redirect(
        `/${(await oauth.accountCount()) === 0 ? "signup" : "login"}?next=${encodeURIComponent(next)}`,
        303,
      );
    }
    return back({
      code: await oauth.createCode(session.userId, q.data.client_id, q.data.redirect_uri, q.data.code_challenge),
    });
  });

  app.post(AuthorityRoutes.oauthToken.path, async (req, reply) => {
    // Checked in RFC 6749 section 5.2's order (client, then grant type, then parameters), so each
    // failure gets its own error code rather than one schema error.
    const form = Form.parse(req.body ?? {});
    const clientId = form["client_id"] ?? "";
    if (clientId !== LINK_CLIENT_ID) throw new ServiceError(401, "invalid_client", "Unknown client.");
    void reply.header("Cache-Control", "no-store").header("Pragma", "no-cache");
    const grantTypes: readonly string[] = [
      "authorization_code",
      "refresh_token",
      "urn:ietf:params:oauth:grant-type:device_code",
    ];
    if (!grantTypes.includes(form["grant_type"] ?? ""))
      throw new ServiceError(
        400,
        "unsupported_grant_type",
        `grant_type ${form["grant_type"] ?? "(missing)"} is not supported.`,
      );
    const parsed = AuthorityRoutes.oauthToken.body.safeParse(form);
    if (!parsed.success)
      throw new ServiceError(400, "invalid_request", `Missing parameters for grant_type ${form["grant_type"] ?? ""}.`);
    const t = parsed.data;
    switch (t.grant_type) {
      case "authorization_code":
        return oauth.exchangeCode({
          code: t.code,
          clientId,
          redirectUri: t.redirect_uri,
          codeVerifier: t.code_verifier,
        });
      case "refresh_token":
        return oauth.refresh(t.refresh_token, clientId);
      case "urn:ietf:params:oauth:grant-type:device_code":
        return oauth.pollDevice(t.device_code, clientId);
    }
  });

  app.post(AuthorityRoutes.deviceAuthorization.path, async (req) => {
    const form = AuthorityRoutes.deviceAuthorization.body.safeParse(req.body ?? {});
    if (!form.success || form.data.client_id !== LINK_CLIENT_ID)
      throw new ServiceError(401, "invalid_client", "Unknown client.");
    const d = await oauth.deviceAuthorization(LINK_CLIENT_ID);
    const base = `${secure ? "https" : "http"}://${req.headers.host ?? "localhost"}`;
    const answer: DeviceAuthorization = {
      ...d,
      verification_uri: `${base}/device`,
      verification_uri_complete: `${base}/device?user_code=${encodeURIComponent(d.user_code)}`,
    };
    return answer;
  });

  app.post(AuthorityRoutes.revokeToken.path, async (req, reply) => {
    // RFC 7009 section 2.2: an unknown or missing token still answers 200.
    const form = AuthorityRoutes.revokeToken.body.safeParse(req.body ?? {});
    if (form.success && form.data.token) {
      await oauth.revoke(form.data.token);
      onRevoked();
    }
    return reply.status(200).send({});
  });

  app.get("/device", async (req, reply) => {
    const session = await oauth.session(req.cookies[SESSION]);
    const raw = (req.query as Record<string, unknown>)["user_code"];
    const userCode = typeof raw === "string" ? raw : "";
    if (session === null)
      return reply.redirect(`/login?next=${encodeURIComponent(`/device?user_code=${userCode}`)}`, 303);
    return html(reply, 200, devicePage({ csrf: csrfFor(req, reply), userCode, error: null }));
  });

  app.post("/device", async (req, reply) => {
    const form = Form.parse(req.body ?? {});
    const session = await oauth.session(req.cookies[SESSION]);
    if (session === null) return await reply.redirect("/login?next=%2Fdevice", 303);
    try {
      checkCsrf(req, form);
      await oauth.approveDevice(session.userId, form["user_code"] ?? "", {
        session: req.cookies[SESSION] ?? "",
        address: req.ip,
      });
      return await html(
        reply,
        200,
        messagePage("Piper Link is connected", "You can close this tab and return to your terminal.", "done"),
      );
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return html(
        reply,
        err.status,
        devicePage({ csrf: csrfFor(req, reply), userCode: form["user_code"] ?? "", error: err.message }),
      );
    }
  });
}

/**
 * One sign-in attempt (DESIGN.md section 5): in the system browser — authorization code with PKCE
 * (S256) and a loopback redirect on a random port that accepts exactly one callback, checks `state`,
 * shows "you can close this tab", and times out cleanly; a request without our `state` is refused
 * and the sign-in keeps waiting — or, without a browser, the device authorization grant, polling as
 * RFC 8628 asks (any answer the RFC allows, not only our own authority's).
 *
 * The addresses handed to the person name `pagesOrigin` when one is given: for the embedded
 * authority that is the Link's own http://127.0.0.1:<port>, where the Link serves the sign-in pages
 * (loopback/sign-in-proxy.ts), so the browser never meets the authority's self-signed certificate
 * and the same address works through an SSH port forward of the Link's port. The OAuth protocol
 * itself (token endpoint, redirect URI checks) is unchanged: only where the pages are shown moves.
 */
import { createHash, randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import type { SocketEnds } from "../../../shared/socket-owner.js";
import type { SocketOwner } from "../process/socket-table-linux.js";
import { createLoopbackApp, linkErrorWriter, type StackReply } from "../loopback/loopback-http.js";
import { LinkError } from "../../../shared/errors.js";
import { notThisSignInPage, signedInPage, signInFailedPage } from "../../../shared/page-style.js";
import { LINK_CLIENT_ID, type TokenResponse } from "../../../shared/authority.js";
import { AuthorityCallError, type AuthorityClient } from "../authority/authority-client.js";

export interface LoginAttempt {
  kind: "browser" | "device";
  authorizeUrl: string | null;
  verificationUri: string | null;
  verificationUriComplete: string | null;
  userCode: string | null;
  /** Resolves with the tokens once the person has signed in. */
  tokens: Promise<TokenResponse>;
  cancel(): void;
}

// The pages share the authority pages' stylesheet and favicon (shared/page-style.ts); they carry
// no script, so a strict CSP fits them.
const DONE_PAGE = signedInPage();
const FAIL_PAGE = signInFailedPage;
const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * `url` with its origin replaced by `pagesOrigin` (path and query kept), or unchanged when
 * `pagesOrigin` is null (a remote authority shows its own pages).
 */
export function onPagesOrigin(url: string, pagesOrigin: string | null): string {
  if (pagesOrigin === null) return url;
  const parsed = new URL(url);
  return new URL(`${parsed.pathname}${parsed.search}`, pagesOrigin).toString();
}

/** The sign-in's redirect listener: where it logs, and (for tests) who owns a socket. */
export interface RedirectListenerOptions {
  log?: Logger;
  socketOwner?: (ends: SocketEnds | null) => Promise<SocketOwner>;
}

/**
 * Starts a browser sign-in: a one-shot loopback listener for the redirect, and the authorization
 * URL (on `pagesOrigin` when given) for the person to open. `timeoutMs` (default 5 min) bounds the
 * wait for the callback; `tokens` then rejects with `timeout`. The listener is the loopback stack's
 * (loopback/loopback-http.ts): only this user's processes reach `/callback` (another local user
 * could otherwise deliver a code for their own account), and only with this Link's `Host`.
 */
export async function startBrowserLogin(
  client: AuthorityClient,
  timeoutMs = 5 * 60_000,
  pagesOrigin: string | null = null,
  listener: RedirectListenerOptions = {},
): Promise<LoginAttempt> {
  const state = randomBytes(16).toString("base64url");
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  let settle: { resolve: (tokens: TokenResponse) => void; reject: (e: Error) => void } | null = null;
  const tokens = new Promise<TokenResponse>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const stack = createLoopbackApp({
    name: "sign-in redirect",
    log: listener.log ?? pino({ enabled: false }),
    timeouts: { headersMs: 5000, requestMs: 10_000, keepAliveMs: 1000 },
    bodyLimit: 1024,
    ...(listener.socketOwner !== undefined ? { socketOwner: listener.socketOwner } : {}),
    writeError: linkErrorWriter,
  });
  const { app } = stack;
  // `Connection: close` on every answer: no socket outlives its answer, so nothing keeps this listener
  // (and the Link's process) alive after the sign-in ends (issue 15 item 7: `stop` exits within 2 s).
  app.addHook("onSend", async (_request, reply, payload) => {
    void reply.header("Connection", "close");
    return payload;
  });
  let closed = false;
  /**
   * Closes the listener and every connection to it, a half-sent request included: a plain close
   * waits for those, and any local process can open one and keep the Link from exiting.
   */
  const shut = (): void => {
    if (closed) return;
    closed = true;
    void stack.close().catch(() => undefined);
  };
  const page = (reply: StackReply, status: number, html: string): StackReply =>
    reply
      .code(status)
      .header("Content-Type", "text/html; charset=utf-8")
      .header("Content-Security-Policy", PAGE_CSP)
      .send(html);
  app.get("/callback", async (request, reply) => {
    const url = new URL(request.url, "http://127.0.0.1");
    // Any local process of this user can reach this port. Only the answer carrying our secret `state`
    // comes from the authority; anything else is refused and the sign-in keeps waiting (issue 16
    // item 1), so an unauthenticated request can neither end nor alter the person's sign-in.
    if (url.searchParams.get("state") !== state) return page(reply, 400, notThisSignInPage());
    // Exactly one genuine callback: whatever it says, the listener stops taking connections after it.
    closeListener();
    clearTimeout(timer);
    const error = url.searchParams.get("error");
    const got = url.searchParams.get("code");
    // The outcome is told once the page has gone out: whoever waits on it may close this listener.
    const answer = (status: number, html: string, outcome: () => void): StackReply => {
      reply.raw.once("close", outcome);
      return page(reply, status, html);
    };
    if (error !== null || got === null) {
      const reason = url.searchParams.get("error_description") ?? error;
      return answer(400, FAIL_PAGE(reason ?? "no code"), () =>
        settle?.reject(new LinkError("unauthorized", `Sign-in failed: ${reason ?? "no code returned"}.`)),
      );
    }
    // The page says "signed in" only once the authority has taken the code: a code it refuses (a
    // forged or replayed one) shows the failure in the browser too, not a success the CLI contradicts.
    try {
      const taken = await client.oauthToken({
        grant_type: "authorization_code",
        code: got,
        redirect_uri: redirectUri,
        code_verifier: verifier,
        client_id: LINK_CLIENT_ID,
      });
      return await answer(200, DONE_PAGE, () => settle?.resolve(taken));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return answer(
        400,
        FAIL_PAGE(`The authority did not accept this sign-in (${reason}). Run piper-link login again.`),
        () => settle?.reject(err instanceof Error ? err : new Error(reason)),
      );
    }
  });
  const { port } = await stack.listen(0, false);
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  /** After the one genuine callback: no new connections; the answer in flight still goes out. */
  const closeListener = (): void => stack.unlisten();
  const timer = setTimeout(() => {
    shut();
    settle?.reject(
      new LinkError("timeout", "Nobody completed the sign-in in the browser in time. Run `piper-link login` again."),
    );
  }, timeoutMs);
  timer.unref();
  const authorizeUrl = `${pagesOrigin ?? client.url}/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: LINK_CLIENT_ID, redirect_uri: redirectUri, state, code_challenge: challenge, code_challenge_method: "S256" }).toString()}`;
  return {
    kind: "browser",
    authorizeUrl,
    verificationUri: null,
    verificationUriComplete: null,
    userCode: null,
    tokens,
    cancel() {
      clearTimeout(timer);
      shut();
      settle?.reject(new LinkError("timeout", "Sign-in cancelled."));
    },
  };
}

/** Clock and timer of the device flow; a test passes a fake one so no real seconds pass. */
export interface DeviceLoginClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: DeviceLoginClock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/** RFC 8628 section 3.2: the polling interval when the answer names none. */
export const DEFAULT_DEVICE_INTERVAL_S = 5;

/**
 * Starts the device authorization grant (RFC 8628) and polls the token endpoint until the person
 * enters the code. Follows section 3.5: `authorization_pending` polls again after `interval`
 * seconds (5 when the answer gives none or one that is not a positive number, and never less than 5), `slow_down` raises the interval by 5 s for this and every
 * later poll, `access_denied` ends with `denied`, `expired_token` or the code's lifetime ends with
 * `timeout`; other errors end with `unauthorized`. Error answers need only `error` (no description).
 */
export async function startDeviceLogin(
  client: AuthorityClient,
  clock: DeviceLoginClock = realClock,
  pagesOrigin: string | null = null,
): Promise<LoginAttempt> {
  const d = await client.deviceAuthorization(LINK_CLIENT_ID);
  let cancelled = false;
  const deadline = clock.now() + d.expires_in * 1000;
  const poll = async (): Promise<TokenResponse> => {
    // No faster than the RFC's default, whatever the authority said: an answer of 0 (or a fraction)
    // would otherwise poll in a tight loop until the code expires.
    let interval = Math.max(d.interval, DEFAULT_DEVICE_INTERVAL_S);
    for (;;) {
      await clock.sleep(interval * 1000);
      if (cancelled) throw new LinkError("timeout", "Sign-in cancelled.");
      if (clock.now() > deadline)
        throw new LinkError(
          "timeout",
          "The code expired before anyone entered it. Run `piper-link login --device` again.",
        );
      try {
        return await client.oauthToken({
          grant_type: "urn:ietf:params:oauth:grant-type:device_code",
          device_code: d.device_code,
          client_id: LINK_CLIENT_ID,
        });
      } catch (err) {
        if (!(err instanceof AuthorityCallError)) throw err;
        if (err.authorityCode === "authorization_pending") continue;
        if (err.authorityCode === "slow_down") {
          interval += 5;
          continue;
        }
        if (err.authorityCode === "expired_token")
          throw new LinkError(
            "timeout",
            "The code expired before anyone entered it. Run `piper-link login --device` again.",
          );
        throw new LinkError(
          err.authorityCode === "access_denied" ? "denied" : "unauthorized",
          `Sign-in failed: ${err.message}`,
        );
      }
    }
  };
  return {
    kind: "device",
    authorizeUrl: null,
    verificationUri: onPagesOrigin(d.verification_uri, pagesOrigin),
    verificationUriComplete:
      d.verification_uri_complete === undefined ? null : onPagesOrigin(d.verification_uri_complete, pagesOrigin),
    userCode: d.user_code,
    tokens: poll(),
    cancel() {
      cancelled = true;
    },
  };
}

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
import http from "node:http";
import type { AddressInfo } from "node:net";
import { checkPeerUser } from "../process/user-guard.js";
import { socketOwner } from "../process/socket-table-linux.js";
import { socketEnds } from "../../../shared/socket-owner.js";
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
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * `url` with its origin replaced by `pagesOrigin` (path and query kept), or unchanged when
 * `pagesOrigin` is null (a remote authority shows its own pages).
 */
export function onPagesOrigin(url: string, pagesOrigin: string | null): string {
  if (pagesOrigin === null) return url;
  const parsed = new URL(url);
  return new URL(`${parsed.pathname}${parsed.search}`, pagesOrigin).toString();
}

/**
 * Starts a browser sign-in: a one-shot loopback listener for the redirect, and the authorization
 * URL (on `pagesOrigin` when given) for the person to open. `timeoutMs` (default 5 min) bounds the
 * wait for the callback; `tokens` then rejects with `timeout`.
 */
export async function startBrowserLogin(client: AuthorityClient, timeoutMs = 5 * 60_000, pagesOrigin: string | null = null): Promise<LoginAttempt> {
  const state = randomBytes(16).toString("base64url");
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  let settle: { resolve: (tokens: TokenResponse) => void; reject: (e: Error) => void } | null = null;
  const tokens = new Promise<TokenResponse>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const server = http.createServer((req, res) => {
    // Only this user's processes may answer the sign-in (another local user could otherwise deliver
    // a code for their own account): the same socket-owner check as the loopback server.
    void socketOwner(socketEnds(req.socket)).then((owner) => {
      const verdict = checkPeerUser(owner, typeof process.getuid === "function" ? process.getuid() : null);
      if (!verdict.allow) {
        res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8", Connection: "close" }).end(verdict.rejection.message);
        return;
      }
      answerCallback(req, res);
    });
  });
  const answerCallback = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== "/callback") {
      res.writeHead(404, { Connection: "close" }).end();
      return;
    }
    // `Connection: close`: no socket outlives its answer, so nothing keeps this listener (and the
    // Link's process) alive after the sign-in ends (issue 15 item 7: `stop` exits within 2 s).
    const headers = { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "Content-Security-Policy": PAGE_CSP, Connection: "close" };
    // Any local process can reach this port. Only the answer carrying our secret `state` comes from
    // the authority; anything else is refused and the sign-in keeps waiting (issue 16 item 1), so an
    // unauthenticated request can neither end nor alter the person's sign-in.
    if (url.searchParams.get("state") !== state) {
      res.writeHead(400, headers).end(notThisSignInPage());
      return;
    }
    // Exactly one genuine callback: whatever it says, the listener closes after it.
    server.close();
    clearTimeout(timer);
    const error = url.searchParams.get("error");
    const got = url.searchParams.get("code");
    if (error !== null || got === null) {
      res.writeHead(400, headers).end(FAIL_PAGE(url.searchParams.get("error_description") ?? error ?? "no code"));
      settle?.reject(new LinkError("unauthorized", `Sign-in failed: ${url.searchParams.get("error_description") ?? error ?? "no code returned"}.`));
      return;
    }
    // The page says "signed in" only once the authority has taken the code: a code it refuses (a
    // forged or replayed one) shows the failure in the browser too, not a success the CLI contradicts.
    client.oauthToken({ grant_type: "authorization_code", code: got, redirect_uri: redirectUri, code_verifier: verifier, client_id: LINK_CLIENT_ID }).then(
      (answer) => {
        res.writeHead(200, headers).end(DONE_PAGE);
        settle?.resolve(answer);
      },
      (err: unknown) => {
        const reason = err instanceof Error ? err.message : String(err);
        res.writeHead(400, headers).end(FAIL_PAGE(`The authority did not accept this sign-in (${reason}). Run piper-link login again.`));
        settle?.reject(err instanceof Error ? err : new Error(reason));
      },
    );
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  /**
   * Closes the listener and every connection to it, a half-sent request included: `close()` alone
   * waits for those, and any local process can open one and keep the Link from exiting.
   */
  const shut = (): void => {
    server.close();
    server.closeAllConnections();
  };
  const timer = setTimeout(() => {
    shut();
    settle?.reject(new LinkError("timeout", "Nobody completed the sign-in in the browser in time. Run `piper-link login` again."));
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
export async function startDeviceLogin(client: AuthorityClient, clock: DeviceLoginClock = realClock, pagesOrigin: string | null = null): Promise<LoginAttempt> {
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
      if (clock.now() > deadline) throw new LinkError("timeout", "The code expired before anyone entered it. Run `piper-link login --device` again.");
      try {
        return await client.oauthToken({ grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: d.device_code, client_id: LINK_CLIENT_ID });
      } catch (err) {
        if (!(err instanceof AuthorityCallError)) throw err;
        if (err.authorityCode === "authorization_pending") continue;
        if (err.authorityCode === "slow_down") {
          interval += 5;
          continue;
        }
        if (err.authorityCode === "expired_token") throw new LinkError("timeout", "The code expired before anyone entered it. Run `piper-link login --device` again.");
        throw new LinkError(err.authorityCode === "access_denied" ? "denied" : "unauthorized", `Sign-in failed: ${err.message}`);
      }
    }
  };
  return {
    kind: "device",
    authorizeUrl: null,
    verificationUri: onPagesOrigin(d.verification_uri, pagesOrigin),
    verificationUriComplete: d.verification_uri_complete === undefined ? null : onPagesOrigin(d.verification_uri_complete, pagesOrigin),
    userCode: d.user_code,
    tokens: poll(),
    cancel() {
      cancelled = true;
    },
  };
}

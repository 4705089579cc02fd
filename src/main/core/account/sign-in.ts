/**
 * Signing this machine in and out: browser (PKCE) and device-code attempts started by a control
 * client and awaited by id, the developer sign-in with the embedded authority's local token, and
 * sign-out. A completed sign-in keeps this machine's instance when it already belongs to the
 * account, otherwise registers a new one; either way the new context reaches every agent.
 * It also keeps who is signed in (account name, email and this machine's name from the
 * authority's `GET /v1/me`, issue 15 item 7), fetched after every sign-in and at start.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import type { Logger } from "pino";
import type { AccountKind, LoginStarted } from "../../../shared/control.js";
import { LinkError } from "../../../shared/errors.js";
import type { AuthorityConnection } from "../authority/connection.js";
import type { InstanceContext } from "./instance-context.js";
import { startBrowserLogin, startDeviceLogin, type LoginAttempt } from "./sign-in-flows.js";
import type { SignInSession } from "./sign-in-session.js";

/** How long fetching who is signed in may take before status goes on without it (ms). */
const WHO_TIMEOUT_MS = 3000;

/** Who is signed in, as LinkStatus shows it: null parts are unknown (nobody signed in, authority silent). */
export interface SignedInAs {
  account: { name: string; email: string | null } | null;
  machine: string | null;
}
const NOBODY: SignedInAs = { account: null, machine: null };

/** How long a started sign-in waits for someone to finish it before it is dropped (ms). */
const LOGIN_ATTEMPT_TTL_MS = 15 * 60_000;

export interface SignIn {
  /** How this Link is signed in: OAuth session, the embedded authority's local token, or not at all. */
  readonly account: AccountKind;
  /** Uses a locally provisioned Link token (embedded or configured remote authority), or none. */
  setLocalToken(token: string | null): void;
  /** Who is signed in, as last fetched from the authority (issue 15 item 7). */
  readonly who: SignedInAs;
  /** Re-reads whether an OAuth session exists and who is signed in (after sign-in, sign-out, start). */
  refreshAccount(): Promise<void>;
  start(device: boolean): Promise<LoginStarted>;
  /** Waits up to `timeoutMs` for attempt `loginId`; on success stores the instance and returns. */
  wait(loginId: string, timeoutMs: number): Promise<void>;
  devSignIn(name: string | undefined): Promise<void>;
  signOut(): Promise<void>;
  /** Cancels every attempt in flight (their loopback listeners close). */
  stop(): void;
}

export interface SignInDeps {
  session: SignInSession;
  connection: AuthorityConnection;
  context: InstanceContext;
  log: Logger;
  /**
   * Where the person's browser is sent for the sign-in pages: the Link's own origin when it serves
   * the embedded authority's pages (loopback/sign-in-proxy.ts), null for a remote authority's own.
   */
  pagesOrigin?: () => string | null;
  /** Told when `who` changed (the Link pushes a status event so the window and tray follow). */
  onWhoChanged?: () => void;
}

export function createSignIn(deps: SignInDeps): SignIn {
  const { session, connection, context, log } = deps;
  const attempts = new Map<string, { attempt: LoginAttempt; timer: NodeJS.Timeout }>();
  let localToken = false;
  let account: AccountKind = "none";
  let who: SignedInAs = NOBODY;

  function setWho(next: SignedInAs): void {
    if (JSON.stringify(next) === JSON.stringify(who)) return;
    who = next;
    deps.onWhoChanged?.();
  }

  /**
   * Asks the authority who this Link's credential is and what this machine is called there. A
   * failure (unreachable, an older authority without the fields) keeps what is known rather than
   * failing the sign-in or the start: status then shows the name once a later refresh succeeds.
   */
  async function refreshWho(): Promise<void> {
    const client = connection.client;
    const instanceId = context.instanceId;
    if (client === null || account === "none" || instanceId === null) {
      setWho(NOBODY);
      return;
    }
    try {
      const me = await client.call("me", { query: { instanceId } }, { timeoutMs: WHO_TIMEOUT_MS });
      setWho({
        account: me.name === undefined ? null : { name: me.name, email: me.email ?? null },
        machine: me.instance?.name ?? null,
      });
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not learn who is signed in");
    }
  }

  function drop(loginId: string): void {
    const entry = attempts.get(loginId);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    entry.attempt.cancel();
    attempts.delete(loginId);
  }

  async function refreshAccount(): Promise<void> {
    account = (await session.hasOAuth().catch(() => false)) ? "oauth" : localToken ? "local-token" : "none";
    await refreshWho();
  }

  return {
    get account() {
      return account;
    },
    get who() {
      return who;
    },
    setLocalToken(token) {
      session.setLocalToken(token);
      localToken = token !== null;
    },
    refreshAccount,
    async start(device) {
      const client = connection.require();
      const pagesOrigin = deps.pagesOrigin?.() ?? null;
      const attempt = device
        ? await startDeviceLogin(client, undefined, pagesOrigin)
        : await startBrowserLogin(client, undefined, pagesOrigin, { log });
      // Settled by `wait`; a sign-in nobody waits for must not become an unhandled rejection.
      attempt.tokens.catch(() => undefined);
      const loginId = randomBytes(9).toString("base64url");
      const timer = setTimeout(() => drop(loginId), LOGIN_ATTEMPT_TTL_MS);
      timer.unref();
      attempts.set(loginId, { attempt, timer });
      return {
        loginId,
        kind: attempt.kind,
        authorizeUrl: attempt.authorizeUrl,
        verificationUri: attempt.verificationUri,
        verificationUriComplete: attempt.verificationUriComplete,
        userCode: attempt.userCode,
      };
    },
    async wait(loginId, timeoutMs) {
      const entry = attempts.get(loginId);
      if (entry === undefined)
        throw new LinkError("not_found", "No sign-in in progress with that ID. Run `piper-link login` again.");
      const { attempt } = entry;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new LinkError("timeout", "Nobody completed the sign-in in time. Run `piper-link login` again.")),
          timeoutMs,
        );
      });
      try {
        const tokens = await Promise.race([attempt.tokens, timeout]);
        await session.accept(tokens);
        await refreshAccount();
        connection.reconnect();
        const client = connection.require();
        // Same machine, same account: keep the instance; otherwise register this machine.
        const existing = context.instanceId;
        const id =
          existing !== null && (await client.instanceIsMine(existing))
            ? existing
            : (await client.registerInstance(os.hostname())).instanceId;
        await context.store(id);
        await refreshWho();
        log.info({ method: attempt.kind }, "signed in");
      } finally {
        clearTimeout(timer);
        drop(loginId);
      }
    },
    async devSignIn(name) {
      const client = connection.require();
      // As `wait` does: a second sign-in keeps this machine's instance while it is still this
      // account's, instead of registering another one (issue 15 item 7).
      const existing = context.instanceId;
      if (existing === null || !(await client.instanceIsMine(existing))) {
        const { instanceId } = await client.registerInstance(name ?? "This machine");
        await context.store(instanceId);
      }
      await refreshWho();
    },
    async signOut() {
      // Revoke this machine's instance first (issue 13 item 8): agents that kept the instance ID
      // (pyper-sdk reads it once) are cut off at the authority, not only at this Link.
      const instanceId = context.instanceId;
      const client = connection.client;
      if (instanceId !== null && client !== null) {
        try {
          await client.revokeInstance(instanceId);
        } catch (err) {
          log.warn(
            { err: err instanceof Error ? err.message : String(err) },
            "could not revoke this machine's instance at the authority",
          );
        }
      }
      await session.signOut();
      await context.forget();
      await refreshAccount();
      setWho(NOBODY);
      connection.reconnect();
    },
    stop() {
      for (const loginId of [...attempts.keys()]) drop(loginId);
    },
  };
}

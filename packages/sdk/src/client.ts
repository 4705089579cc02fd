/**
 * `createPiperClient`: the agent side of Piper Link. One persistent WebSocket to the Link (found
 * without configuration), `hello` once, `context` pushes tracked, reconnect with backoff; in-flight
 * requests are re-sent after a reconnect (the Link joins them to the same pending request).
 * `getSecret` resolves through the Link — waiting for the person's approval when there is no grant
 * yet — and falls back to environment variables with pyper-sdk's rules; `getSecrets` does the same
 * for several variables with one approval card and partial results. `fetch` asks the Link to
 * make an HTTPS call with secrets injected by name (DESIGN.md section 8): the value never enters
 * this process; the answer streams back as a standard `Response`, echoes of the value redacted.
 */
import WebSocket from "ws";
import { backoffDelay } from "../../../src/shared/backoff.js";
import type { CallAuth } from "../../../src/shared/calls.js";
import { LOCKED_MESSAGE, NOT_SIGNED_IN_MESSAGE } from "../../../src/shared/errors.js";
import type { ActingFor, AgentGrant, LinkMessage } from "../../../src/shared/protocol.js";
import { AGENT_SUBPROTOCOL, LINK_VERSION, PROTOCOL_VERSION } from "../../../src/shared/version.js";
import { discoverLinkUrl } from "./discovery.js";
import { envFallbackValue, envNameFor } from "./env.js";
import { decodeFrame, encodeFrame } from "./frames.js";
import {
  PiperConfigError,
  PiperError,
  PiperForbiddenError,
  PiperGrantNeededError,
  PiperLinkLockedError,
  PiperLinkNeededError,
  PiperSecretAcquisitionError,
} from "./errors.js";
import { AGENT_DEFAULTS } from "../../../src/shared/defaults.js";

export interface PiperLogger {
  debug?(message: string): void;
  info?(message: string): void;
  warn?(message: string): void;
}

export interface PiperClientOptions {
  /** Your agent's client ID; the person sees it in every approval prompt. */
  clientId: string;
  /** A display name for the approval prompt. */
  name?: string;
  /** The Link's WebSocket URL; found automatically when omitted. */
  linkUrl?: string;
  /** For code that only needs the context: skip the Link for `getInstanceId()`. */
  instanceId?: string;
  useLink?: boolean;
  fallbackToEnv?: boolean;
  envPrefix?: string;
  envMap?: Readonly<Record<string, string>>;
  /** How long `getSecret` waits for the person by default (120 s). */
  approvalTimeoutMs?: number;
  /** How long to try reaching the Link (until its socket opens) before `PiperLinkNeededError` (1 s). */
  connectTimeoutMs?: number;
  /**
   * Once connected, how long the Link may take to answer the hello (10 s): it identifies the program
   * that connected first, hashing its executable and script the first time it sees them.
   */
  helloTimeoutMs?: number;
  /**
   * Aborting it closes the client: every pending call rejects with a `PiperError` whose code is
   * `aborted`, and `getSecret` then never falls back to the environment (the caller asked to stop).
   */
  signal?: AbortSignal;
  logger?: PiperLogger;
  /** The environment for discovery and fallback (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * For Piper Link's own commands only (`run`, `mcp`): whom this client asks for, sent in `hello`
   * (protocol.ts `Hello.actingFor`). `{ kind: "parent" }` asks the Link to name this process's
   * parent in approval prompts (the MCP client that started `piper-link mcp`). The Link ignores it
   * from any other program, so an agent gains nothing by setting it.
   */
  actingFor?: ActingFor;
}

export interface GetSecretOptions {
  /** Shown to the person in the approval prompt. */
  reason?: string;
  /** Wait for approval when there is no grant (default true); false throws `PiperGrantNeededError`. */
  wait?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once when the request is waiting for the person, e.g. to print "approve in Piper Link". */
  onPending?: (info: { variable: string; requestId: string }) => void;
}

export interface SecretResult {
  value: string;
  source: "piper" | "environment_variable";
  variable: string;
  grantId?: string;
  expiresAt?: string | null;
}

/** `getSecrets` options: those of `getSecret`, with `onPending` naming every request of the batch. */
export interface GetSecretsOptions extends Omit<GetSecretOptions, "onPending"> {
  /** Called once when any variable waits for the person (all of them are on one card in the window). */
  onPending?: (info: { variables: string[]; requestIds: string[]; batchId: string | null }) => void;
}

/**
 * One variable's answer from `getSecrets`: its value (from Piper, or the environment fallback), or
 * the error `getSecret` would have thrown for it (`denied`, `timeout`, `grant_needed`,
 * `secret_not_found`, `secret_unavailable` when every source failed…).
 */
export type SecretsEntry = SecretResult | { variable: string; error: PiperError };

/**
 * `fetch` options: the standard ones (method, headers, a string or bytes body, signal) plus `auth`,
 * which names the secrets to inject and how (`bearer`, `basic`, `header`, `query`, `jsonField`,
 * `formField`), and what the approval prompt shows.
 */
export interface PiperFetchInit {
  method?: string;
  headers?: ConstructorParameters<typeof Headers>[0];
  body?: string | Uint8Array | ArrayBuffer | null;
  signal?: AbortSignal;
  auth: CallAuth;
  /** Shown to the person, with the exact method and URL, when a secret needs approval. */
  reason?: string;
  /** Wait for approval when there is no grant (default true); false throws `PiperGrantNeededError`. */
  wait?: boolean;
  /**
   * When a grant exists but does not allow this method and URL, ask the person (a new request
   * naming them) instead of failing with `destination_not_allowed` (default false).
   */
  askIfRefused?: boolean;
  approvalTimeoutMs?: number;
  /** Upper bound for the upstream exchange, in ms (the Link's ceiling is 5 minutes). */
  timeoutMs?: number;
  onPending?: (info: { requestId: string }) => void;
}

export interface PiperClient {
  getSecret(variable: string, options?: GetSecretOptions): Promise<SecretResult>;
  /**
   * Several secrets in one ask (issue 13 item 7): one request card in Piper Link for all the
   * variables without a grant, approvable together. Resolves with an entry per variable, keyed by
   * the name given (partial results: some values, some errors; check `"error" in entry`); each
   * variable the Link could not give falls back to the environment like `getSecret`. 1–32 distinct
   * names. Rejects only for bad arguments (`PiperConfigError`) or when the client is closed or
   * aborted (`closed`, `aborted`).
   */
  getSecrets(variables: readonly string[], options?: GetSecretsOptions): Promise<Record<string, SecretsEntry>>;
  /**
   * Makes an HTTPS request through the Link with secrets injected by name. Resolves with a standard
   * `Response` when the upstream's headers arrive; its body streams as the upstream sends it.
   * Rejects with a `PiperError` (`destination_not_allowed`, `policy_violation`, `denied`,
   * `upstream_unavailable` (retryable), `timeout`, `bad_request`, `aborted`…); an error after the
   * headers errors the body stream. `response.headers.get("x-piper-redacted")` is "true" when the
   * head already held a redaction; the body's redactions are reported when it ends.
   */
  fetch(url: string | URL, init: PiperFetchInit): Promise<Response>;
  /**
   * The live grants of this agent (its client ID, on this machine): the variable names it may use
   * now without a new approval, and what each allows (`read`, or `use` with destinations). Never a
   * value. Rejects with a `PiperError` (`not_logged_in`, `authority_unavailable`, `not_implemented`
   * from a Link that predates the `grants` message).
   */
  listGrants(): Promise<AgentGrant[]>;
  /**
   * Asks the person for the right to use `variable` in calls with `init.method` (default GET) to
   * `url`, without making the call; the value never comes here (the `requestAccess` message).
   * Resolves `{ state: "granted", requestId: null }` when a live grant of this agent already allows
   * that use (nobody is asked), else `{ state: "pending", requestId }`: the person sees the request
   * in Piper Link, worded as for a `fetch` to that URL. Never waits; see the answer later with
   * `listGrants`, or make the `fetch` (it waits for the approval). Rejects with a `PiperError`
   * (`bad_request` for a URL that is not https://, `secret_not_found`, `not_logged_in`, `locked`,
   * `authority_unavailable`, `not_implemented` / `unknown_type` from a Link that predates it).
   */
  requestAccess(variable: string, init: RequestAccessInit): Promise<AccessState>;
  getInstanceId(): Promise<string>;
  close(): void;
}

/** `requestAccess` options: where the secret would be used, and what the prompt shows. */
export interface RequestAccessInit {
  url: string | URL;
  /** Upper-case HTTP method (default GET). */
  method?: string;
  /** Shown to the person with the method and URL. */
  reason?: string;
}

/** The answer to `requestAccess` (never a value). */
export interface AccessState {
  variable: string;
  state: "granted" | "pending";
  /** The request waiting for the person (`pending`); null when already granted. */
  requestId: string | null;
}

type Handler = (message: LinkMessage) => void;

interface InFlight {
  frame: string;
  handler: Handler;
  /** Ends the call with an SDK-side error (the client closed or its signal fired). */
  fail(err: PiperError): void;
}

const LINK_NOT_RUNNING =
  "Piper Link is not running. Start it with `npm start` (or `piper-link start`) or open the app.";

export function createPiperClient(options: PiperClientOptions): PiperClient {
  if (!options.clientId || !/^[A-Za-z0-9._:@-]{1,128}$/.test(options.clientId)) {
    throw new PiperConfigError("invalid_client_id", "clientId is required: 1-128 letters, digits or . _ : @ -.");
  }
  const env = options.env ?? process.env;
  const log = options.logger ?? {};
  const useLink = options.useLink ?? true;
  const fallbackToEnv = options.fallbackToEnv ?? true;
  const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;

  let ws: WebSocket | null = null;
  let ready: Promise<void> | null = null;
  let instanceId: string | null = null;
  let loggedOut: { code: "not_logged_in" | "locked"; message: string } | null = null;
  let closed = false;
  let nextId = 1;
  let reconnects = 0;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  const inFlight = new Map<string, InFlight>();

  function route(data: Buffer): void {
    let message: LinkMessage;
    try {
      message = decodeFrame(data.toString("utf8"));
    } catch {
      log.warn?.("piper: ignored a frame the SDK does not understand");
      return;
    }
    if (message.type === "context") {
      instanceId = message.instanceId;
      loggedOut =
        message.state === "ready"
          ? null
          : message.reason === "locked"
            ? { code: "locked", message: LOCKED_MESSAGE }
            : { code: "not_logged_in", message: NOT_SIGNED_IN_MESSAGE };
      return;
    }
    const id = message.id === null ? null : String(message.id);
    if (id !== null) inFlight.get(id)?.handler(message);
  }

  function scheduleReconnect(): void {
    if (closed || reconnectTimer !== null) return;
    reconnectTimer = setTimeout(
      () => {
        reconnectTimer = null;
        connect().catch(() => scheduleReconnect());
      },
      backoffDelay(reconnects++, { baseMs: 250, capMs: 5000 }),
    );
    reconnectTimer.unref();
  }

  /** Opens the connection and says hello; resolves when the Link answered the hello. */
  function connect(): Promise<void> {
    const found = discoverLinkUrl(options.linkUrl, env);
    if (found.url === null)
      return Promise.reject(
        new PiperLinkNeededError(
          "link_not_running",
          `${LINK_NOT_RUNNING} (no Link of profile ${found.profile} is running)`,
        ),
      );
    const { url, source } = found;
    log.debug?.(`piper: connecting to ${url} (${source})`);
    const promise = new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(url, AGENT_SUBPROTOCOL, {
        handshakeTimeout: connectTimeoutMs,
        perMessageDeflate: false,
      });
      ws = socket;
      const helloId = `hello-${nextId++}`;
      // Until the socket opens, silence means no Link; once open, the Link is there and may take a
      // while to answer the hello (it looks up and hashes the program that connected, once per file).
      let timer = setTimeout(() => {
        socket.terminate();
        reject(new PiperLinkNeededError("link_not_running", `${LINK_NOT_RUNNING} (no answer from ${url})`));
      }, connectTimeoutMs);
      inFlight.set(helloId, {
        frame: "",
        // The socket's close event rejects the connect attempt itself.
        fail: () => undefined,
        handler: (m) => {
          inFlight.delete(helloId);
          clearTimeout(timer);
          reconnects = 0;
          if (m.type === "welcome") {
            instanceId = m.instanceId;
            loggedOut = null;
          } else if (m.type === "error" && (m.code === "not_logged_in" || m.code === "locked")) {
            instanceId = null;
            loggedOut = { code: m.code, message: m.message };
          } else if (m.type === "error") {
            reject(new PiperError(m.code, m.message, { retryable: m.retryable }));
            return;
          }
          // Re-send what was waiting when the previous connection dropped.
          for (const [id, f] of inFlight) if (id !== helloId && f.frame) socket.send(f.frame);
          resolve();
        },
      });
      socket.on("open", () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          socket.terminate();
          reject(
            new PiperLinkNeededError(
              "link_not_running",
              `Piper Link at ${url} accepted the connection but did not answer its hello within ${helloTimeoutMs / 1000} s; it may be overloaded. Try again.`,
            ),
          );
        }, helloTimeoutMs);
        socket.send(
          encodeFrame({
            type: "hello",
            id: helloId,
            protocol: PROTOCOL_VERSION,
            agent: { clientId: options.clientId, ...(options.name ? { name: options.name } : {}) },
            sdk: { name: "@piper-link/sdk", version: LINK_VERSION },
            ...(options.actingFor ? { actingFor: options.actingFor } : {}),
          }),
        );
        heartbeat = setInterval(() => {
          let answered = false;
          socket.once("pong", () => (answered = true));
          socket.ping();
          setTimeout(() => {
            if (!answered) socket.terminate();
          }, 10_000).unref();
        }, 30_000);
        heartbeat.unref();
      });
      socket.on("message", route);
      socket.on("error", (err) => {
        clearTimeout(timer);
        inFlight.delete(helloId);
        reject(new PiperLinkNeededError("link_not_running", `${LINK_NOT_RUNNING} (${err.message})`, { cause: err }));
      });
      socket.on("close", () => {
        clearTimeout(timer);
        if (heartbeat) clearInterval(heartbeat);
        if (ws === socket) {
          ws = null;
          ready = null;
        }
        inFlight.delete(helloId);
        reject(new PiperLinkNeededError("link_not_running", `${LINK_NOT_RUNNING} (connection closed)`));
        // Calls are not re-sent after a reconnect (a request may not be safe to repeat): they fail.
        for (const [id, f] of inFlight) {
          if (f.frame !== "") continue;
          inFlight.delete(id);
          f.fail(new PiperLinkNeededError("link_not_running", `${LINK_NOT_RUNNING} (connection closed during a call)`));
        }
        // Persistent: come back when requests are waiting (they are re-sent after hello).
        if (!closed && inFlight.size > 0) scheduleReconnect();
      });
    });
    ready = promise;
    promise.catch(() => {
      if (ready === promise) ready = null;
    });
    return promise;
  }

  /** The error for calls cut short by the client-level signal (issue 12 item 6). */
  function abortedError(): PiperError {
    return new PiperError("aborted", "This Piper client was aborted by its signal.", { cause: options.signal?.reason });
  }

  async function ensureReady(): Promise<void> {
    if (options.signal?.aborted === true) throw abortedError();
    if (closed) throw new PiperError("closed", "This Piper client was closed.");
    await (ready ?? connect());
    if (loggedOut?.code === "locked") throw new PiperLinkLockedError(loggedOut.message);
    if (loggedOut !== null || instanceId === null) {
      throw new PiperLinkNeededError("not_logged_in", loggedOut?.message ?? NOT_SIGNED_IN_MESSAGE);
    }
  }

  function errorFor(
    variable: string,
    m: Extract<LinkMessage, { type: "error" }>,
    requestId: string | null,
  ): PiperError {
    switch (m.code) {
      case "denied":
        return new PiperForbiddenError(variable, `The request for ${variable} was denied in Piper Link.`);
      case "timeout":
        return new PiperGrantNeededError(
          "timeout",
          variable,
          requestId,
          `Nobody approved ${variable} in Piper Link in time. Approve it there and try again.`,
        );
      case "grant_needed":
        return new PiperGrantNeededError(
          "grant_needed",
          variable,
          requestId,
          `${variable} needs approval in Piper Link.`,
        );
      case "not_logged_in":
        return new PiperLinkNeededError("not_logged_in", m.message);
      case "locked":
        return new PiperLinkLockedError(m.message);
      default:
        return new PiperError(m.code, m.message, { retryable: m.retryable });
    }
  }

  async function viaLink(variable: string, opts: GetSecretOptions): Promise<SecretResult> {
    await ensureReady();
    const wait = opts.wait ?? true;
    const timeoutMs = opts.timeoutMs ?? options.approvalTimeoutMs ?? AGENT_DEFAULTS.approvalWaitMs;
    const id = `r-${nextId++}`;
    const frame = encodeFrame({
      type: "resolve",
      id,
      variable,
      wait,
      timeoutMs,
      ...(opts.reason ? { reason: opts.reason } : {}),
    });
    const signals = [opts.signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    return new Promise<SecretResult>((resolve, reject) => {
      let requestId: string | null = null;
      const finish = (err: PiperError | null, result?: SecretResult): void => {
        inFlight.delete(id);
        clearTimeout(overall);
        for (const s of signals) s.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else if (result) resolve(result);
      };
      const onAbort = (): void => finish(new PiperError("aborted", `Waiting for ${variable} was cancelled.`));
      // The Link answers `timeout` itself; this only guards against a Link that never answers.
      const overall = setTimeout(
        () =>
          finish(
            new PiperGrantNeededError(
              "timeout",
              variable,
              requestId,
              `No answer for ${variable} within ${timeoutMs} ms.`,
            ),
          ),
        timeoutMs + 10_000,
      );
      overall.unref();
      for (const s of signals) {
        if (s.aborted) return onAbort();
        s.addEventListener("abort", onAbort, { once: true });
      }
      inFlight.set(id, {
        frame,
        fail: (err) => finish(err),
        handler: (m) => {
          if (m.type === "pending") {
            if (requestId === null) opts.onPending?.({ variable, requestId: m.requestId });
            requestId = m.requestId;
            if (!wait)
              finish(
                new PiperGrantNeededError(
                  "grant_needed",
                  variable,
                  requestId,
                  `${variable} needs approval in Piper Link (request ${requestId}).`,
                ),
              );
          } else if (m.type === "secret") {
            finish(null, { value: m.value, source: "piper", variable, grantId: m.grantId, expiresAt: m.expiresAt });
          } else if (m.type === "error") {
            finish(errorFor(variable, m, requestId));
          }
        },
      });
      if (ws?.readyState === WebSocket.OPEN) ws.send(frame);
      else scheduleReconnect();
    });
  }

  /**
   * One `resolveMany` through the Link: resolves with a result per variable (values or the Link's
   * per-variable errors as SDK errors); rejects when the message as a whole fails (Link not running,
   * not signed in, aborted), so the caller can fall back for every variable.
   */
  async function manyViaLink(
    variables: string[],
    opts: GetSecretsOptions,
  ): Promise<Map<string, SecretResult | PiperError>> {
    await ensureReady();
    const wait = opts.wait ?? true;
    const timeoutMs = opts.timeoutMs ?? options.approvalTimeoutMs ?? AGENT_DEFAULTS.approvalWaitMs;
    const id = `m-${nextId++}`;
    const frame = encodeFrame({
      type: "resolveMany",
      id,
      variables,
      wait,
      timeoutMs,
      ...(opts.reason ? { reason: opts.reason } : {}),
    });
    const signals = [opts.signal, options.signal].filter((sig): sig is AbortSignal => sig !== undefined);
    return new Promise((resolve, reject) => {
      let requestIds: string[] = [];
      const finish = (err: PiperError | null, result?: Map<string, SecretResult | PiperError>): void => {
        inFlight.delete(id);
        clearTimeout(overall);
        for (const sig of signals) sig.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else if (result) resolve(result);
      };
      const onAbort = (): void =>
        finish(new PiperError("aborted", `Waiting for ${variables.join(", ")} was cancelled.`));
      // The Link answers per-variable timeouts itself; this only guards against a Link that never answers.
      const overall = setTimeout(() => {
        const late = new Map<string, SecretResult | PiperError>();
        for (const v of variables)
          late.set(
            v,
            new PiperGrantNeededError(
              "timeout",
              v,
              requestIds[0] ?? null,
              `No answer for ${v} within ${timeoutMs} ms.`,
            ),
          );
        finish(null, late);
      }, timeoutMs + 10_000);
      overall.unref();
      for (const sig of signals) {
        if (sig.aborted) return onAbort();
        sig.addEventListener("abort", onAbort, { once: true });
      }
      inFlight.set(id, {
        frame,
        fail: (err) => finish(err),
        handler: (m) => {
          if (m.type === "pending") {
            if (requestIds.length === 0)
              opts.onPending?.({ variables, requestIds: m.requestIds ?? [m.requestId], batchId: m.batchId ?? null });
            requestIds = m.requestIds ?? [m.requestId];
          } else if (m.type === "secrets") {
            const out = new Map<string, SecretResult | PiperError>();
            for (const v of variables) {
              const r = Object.hasOwn(m.results, v) ? m.results[v] : undefined;
              if (r === undefined) out.set(v, new PiperError("internal_error", `Piper Link sent no answer for ${v}.`));
              else if ("value" in r)
                out.set(v, {
                  value: r.value,
                  source: "piper",
                  variable: v,
                  grantId: r.grantId,
                  expiresAt: r.expiresAt,
                });
              else out.set(v, errorFor(v, { type: "error", id: m.id, ...r.error }, requestIds[0] ?? null));
            }
            finish(null, out);
          } else if (m.type === "error") {
            finish(errorFor(variables.join(", "), m, requestIds[0] ?? null));
          }
        },
      });
      if (ws?.readyState === WebSocket.OPEN) ws.send(frame);
      else scheduleReconnect();
    });
  }

  /** The environment's answer for `variable` after the Link's `piperError` (or none), as `getSecret` gives it. */
  function envEntry(variable: string, piperError: unknown): SecretsEntry {
    const attempts: Record<string, string> = {};
    if (piperError !== null)
      attempts["piper"] =
        piperError instanceof PiperError
          ? `${piperError.name} (${piperError.code}): ${piperError.message}`
          : piperError instanceof Error
            ? piperError.message
            : "failed";
    if (fallbackToEnv) {
      const name = envNameFor(variable, options.envPrefix, options.envMap);
      const value = envFallbackValue(env, name);
      if (value !== null) return { value, source: "environment_variable", variable };
      attempts["environment_variable"] = `${name} is not set`;
    }
    if (!fallbackToEnv && piperError instanceof PiperError) return { variable, error: piperError };
    return { variable, error: new PiperSecretAcquisitionError(variable, attempts, piperError) };
  }

  /** Statuses whose Response may not have a body (Fetch standard). */
  const NULL_BODY = new Set([101, 103, 204, 205, 304]);

  async function viaCall(url: string, init: PiperFetchInit): Promise<Response> {
    await ensureReady();
    const id = `c-${nextId++}`;
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const body =
      init.body === undefined || init.body === null
        ? undefined
        : typeof init.body === "string"
          ? { text: init.body }
          : {
              base64: Buffer.from(init.body instanceof ArrayBuffer ? new Uint8Array(init.body) : init.body).toString(
                "base64",
              ),
            };
    const frame = encodeFrame({
      type: "call",
      id,
      method: (init.method ?? "GET").toUpperCase(),
      url,
      headers,
      ...(body ? { body } : {}),
      auth: init.auth,
      wait: init.wait ?? true,
      ...(init.askIfRefused === true ? { askIfRefused: true } : {}),
      ...(init.reason ? { reason: init.reason } : {}),
      ...(init.approvalTimeoutMs !== undefined ? { approvalTimeoutMs: init.approvalTimeoutMs } : {}),
      ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}),
    });
    const signals = [init.signal, options.signal].filter((sig): sig is AbortSignal => sig !== undefined);
    return new Promise<Response>((resolve, reject) => {
      let stream: ReadableStreamDefaultController<Uint8Array> | null = null;
      let requestId: string | null = null;
      const finish = (err: PiperError | null): void => {
        inFlight.delete(id);
        for (const sig of signals) sig.removeEventListener("abort", onAbort);
        if (err === null) stream?.close();
        else if (stream !== null) stream.error(err);
        else reject(err);
      };
      const onAbort = (): void => {
        if (ws?.readyState === WebSocket.OPEN) ws.send(encodeFrame({ type: "cancel", id }));
        finish(new PiperError("aborted", `The call to ${url} was cancelled.`));
      };
      for (const sig of signals) {
        if (sig.aborted) return onAbort();
        sig.addEventListener("abort", onAbort, { once: true });
      }
      inFlight.set(id, {
        // Empty: a call is never re-sent after a reconnect.
        frame: "",
        fail: (err) => finish(err),
        handler: (m) => {
          if (m.type === "pending") {
            if (requestId === null) init.onPending?.({ requestId: m.requestId });
            requestId = m.requestId;
          } else if (m.type === "call.head") {
            const responseHeaders = new Headers();
            for (const [k, v] of m.headers) responseHeaders.append(k, v);
            responseHeaders.set("x-piper-redacted", String(m.redacted));
            const readable = NULL_BODY.has(m.status)
              ? null
              : new ReadableStream<Uint8Array>({
                  start: (controller) => {
                    stream = controller;
                  },
                  cancel: () => {
                    if (ws?.readyState === WebSocket.OPEN) ws.send(encodeFrame({ type: "cancel", id }));
                    inFlight.delete(id);
                  },
                });
            resolve(new Response(readable, { status: m.status, statusText: m.statusText, headers: responseHeaders }));
          } else if (m.type === "call.chunk") {
            stream?.enqueue(new Uint8Array(Buffer.from(m.data, "base64")));
          } else if (m.type === "call.end") {
            finish(null);
          } else if (m.type === "error") {
            finish(
              m.code === "not_logged_in"
                ? new PiperLinkNeededError("not_logged_in", m.message)
                : m.code === "locked"
                  ? new PiperLinkLockedError(m.message)
                  : m.code === "denied"
                    ? new PiperForbiddenError(url, m.message)
                    : new PiperError(m.code, m.message, { retryable: m.retryable }),
            );
          }
        },
      });
      ws?.send(frame);
    });
  }

  async function viaGrants(): Promise<AgentGrant[]> {
    await ensureReady();
    const id = `g-${nextId++}`;
    const frame = encodeFrame({ type: "grants", id });
    return new Promise<AgentGrant[]>((resolve, reject) => {
      inFlight.set(id, {
        // Reading a list is safe to repeat after a reconnect.
        frame,
        fail: (err) => {
          inFlight.delete(id);
          reject(err);
        },
        handler: (m) => {
          if (m.type === "grants.list") {
            inFlight.delete(id);
            resolve(m.grants);
          } else if (m.type === "error") {
            inFlight.delete(id);
            reject(
              m.code === "not_logged_in"
                ? new PiperLinkNeededError("not_logged_in", m.message)
                : m.code === "locked"
                  ? new PiperLinkLockedError(m.message)
                  : new PiperError(m.code, m.message, { retryable: m.retryable }),
            );
          }
        },
      });
      if (ws?.readyState === WebSocket.OPEN) ws.send(frame);
      else scheduleReconnect();
    });
  }

  async function viaRequestAccess(variable: string, init: RequestAccessInit): Promise<AccessState> {
    if (!variable.trim()) throw new PiperConfigError("invalid_variable", "requestAccess needs a variable name.");
    await ensureReady();
    const id = `a-${nextId++}`;
    const frame = encodeFrame({
      type: "requestAccess",
      id,
      variable,
      method: (init.method ?? "GET").toUpperCase(),
      url: String(init.url),
      ...(init.reason ? { reason: init.reason } : {}),
    });
    return new Promise<AccessState>((resolve, reject) => {
      inFlight.set(id, {
        // Safe to repeat after a reconnect: the Link joins the same pending request.
        frame,
        fail: (err) => {
          inFlight.delete(id);
          reject(err);
        },
        handler: (m) => {
          if (m.type === "access") {
            inFlight.delete(id);
            resolve({ variable, state: m.state, requestId: m.requestId });
          } else if (m.type === "error") {
            inFlight.delete(id);
            reject(
              m.code === "not_logged_in"
                ? new PiperLinkNeededError("not_logged_in", m.message)
                : m.code === "locked"
                  ? new PiperLinkLockedError(m.message)
                  : new PiperError(m.code, m.message, { retryable: m.retryable }),
            );
          }
        },
      });
      if (ws?.readyState === WebSocket.OPEN) ws.send(frame);
      else scheduleReconnect();
    });
  }

  const client: PiperClient = {
    fetch(url, init) {
      return viaCall(String(url), init);
    },

    listGrants() {
      return viaGrants();
    },

    requestAccess(variable, init) {
      return viaRequestAccess(variable, init);
    },

    async getSecret(variable, opts = {}) {
      if (!variable.trim()) throw new PiperConfigError("invalid_variable", "getSecret needs a variable name.");
      if (!useLink && !fallbackToEnv)
        throw new PiperConfigError(
          "no_sources",
          "Both useLink and fallbackToEnv are off: there is nowhere to get secrets from.",
        );
      const attempts: Record<string, string> = {};
      let piperError: unknown = null;
      if (useLink) {
        try {
          return await viaLink(variable, opts);
        } catch (err) {
          // Asked to stop: no fallback. Whatever the Link path failed with, the client's own signal wins.
          if (options.signal?.aborted === true)
            throw err instanceof PiperError && err.code === "aborted" ? err : abortedError();
          if (err instanceof PiperError && (err.code === "aborted" || err.code === "closed")) throw err;
          piperError = err;
          attempts["piper"] = err instanceof PiperError ? `${err.name} (${err.code}): ${err.message}` : String(err);
          log.info?.(`piper: ${variable} not available from Piper Link: ${attempts["piper"]}`);
        }
      }
      if (fallbackToEnv) {
        const name = envNameFor(variable, options.envPrefix, options.envMap);
        const value = envFallbackValue(env, name);
        if (value !== null) return { value, source: "environment_variable", variable };
        attempts["environment_variable"] = `${name} is not set`;
      }
      if (!fallbackToEnv && piperError instanceof PiperError) throw piperError;
      throw new PiperSecretAcquisitionError(variable, attempts, piperError);
    },

    async getSecrets(variables, opts = {}) {
      if (variables.length === 0 || variables.length > 32 || variables.some((v) => !v.trim())) {
        throw new PiperConfigError("invalid_variable", "getSecrets needs 1-32 non-empty variable names.");
      }
      if (!useLink && !fallbackToEnv)
        throw new PiperConfigError(
          "no_sources",
          "Both useLink and fallbackToEnv are off: there is nowhere to get secrets from.",
        );
      const distinct = [...new Set(variables)];
      let fromLink: Map<string, SecretResult | PiperError> | null = null;
      let linkError: unknown = null;
      if (useLink) {
        try {
          fromLink = await manyViaLink(distinct, opts);
        } catch (err) {
          if (options.signal?.aborted === true)
            throw err instanceof PiperError && err.code === "aborted" ? err : abortedError();
          if (err instanceof PiperError && (err.code === "aborted" || err.code === "closed")) throw err;
          linkError = err;
          log.info?.(
            `piper: ${distinct.join(", ")} not available from Piper Link: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
      }
      const entries = new Map<string, SecretsEntry>();
      for (const v of distinct) {
        const got = fromLink?.get(v);
        if (got !== undefined && !(got instanceof PiperError)) entries.set(v, got);
        else entries.set(v, envEntry(v, got ?? linkError));
      }
      // fromEntries defines own properties: a variable named `__proto__` is an entry like the others.
      return Object.fromEntries(entries);
    },

    async getInstanceId() {
      if (options.instanceId) return options.instanceId;
      await ensureReady();
      return instanceId ?? "";
    },

    close() {
      shutDown(new PiperError("closed", "This Piper client was closed."));
    },
  };

  /** Closes the socket and fails every call in flight with `reason` (`aborted` when the signal fired). */
  function shutDown(reason: PiperError): void {
    closed = true;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    if (heartbeat) clearInterval(heartbeat);
    for (const [id, f] of inFlight) {
      inFlight.delete(id);
      f.fail(reason);
    }
    ws?.close(1000);
    ws = null;
  }
  if (options.signal?.aborted === true) shutDown(abortedError());
  else options.signal?.addEventListener("abort", () => shutDown(abortedError()), { once: true });
  return client;
}

/**
 * The control channel (`/v1/control`, DESIGN.md section 3): how the UI and the CLI talk to the
 * running Link core. The first frame must be `auth` with the per-start token; after that the client
 * sends `call` frames and receives `result`/`error` replies plus `event` pushes. Every method is
 * declared once here with its params and result schema; `LinkApi` is derived from this table.
 */
import { z } from "zod";
import {
  ApproveBodySchema,
  AuditPageSchema,
  AuthorityEventSchema,
  GrantViewSchema,
  RequestViewSchema,
  SecretHostsSchema,
  SecretNameSchema,
  SecretValueSchema,
  SecretViewSchema,
} from "./authority.js";
import { GrantPolicySchema } from "./grant-terms.js";
import { ErrorCodeSchema, LinkError } from "./errors.js";
import { PeerProcessSchema } from "./process.js";
import { ContextStateSchema, RequestIdSchema } from "./protocol.js";
import { describeValidation, methodWords } from "./wording.js";
import {
  PinChallengeSchema,
  PinSchema,
  presenceAction,
  PresenceProofSchema,
  ResidualRiskSchema,
  VaultStatusSchema,
} from "./presence.js";

export { PeerProcessSchema, type PeerProcess } from "./process.js";

export const AgentConnectionSchema = z.object({
  connectionId: z.string(),
  clientId: z.string().nullable(),
  name: z.string().nullable(),
  connectedAt: z.string(),
  remotePort: z.number().int(),
  process: PeerProcessSchema.nullable(),
});
export type AgentConnection = z.infer<typeof AgentConnectionSchema>;

/** Where the Link keeps its keychain items: the OS keychain or the passphrase-encrypted file (DESIGN.md section 6). */
export const KeychainBackendSchema = z.enum(["os", "file"]);
export type KeychainBackend = z.infer<typeof KeychainBackendSchema>;

export const KeychainHealthSchema = z.object({
  ok: z.boolean(),
  /** The backend in use; null for a store injected without one (tests, benchmarks). */
  backend: KeychainBackendSchema.nullable(),
  code: ErrorCodeSchema.nullable(),
  message: z.string().nullable(),
});

/** How a Link proves who it is to its authority: an OAuth sign-in, a locally provisioned token, or nothing yet. */
export const AccountKindSchema = z.enum(["oauth", "local-token", "none"]);
export type AccountKind = z.infer<typeof AccountKindSchema>;

export const LinkStatusSchema = z.object({
  version: z.string(),
  pid: z.number().int(),
  profile: z.string(),
  startedAt: z.string(),
  url: z.string(),
  port: z.number().int(),
  /** The port the Link was asked to use (31477 unless configured). */
  preferredPort: z.number().int(),
  /** True when the preferred port was taken and the Link listens elsewhere. */
  portFallback: z.boolean(),
  state: ContextStateSchema,
  /** The instance ID with all but its prefix and last four characters hidden. */
  instanceIdRedacted: z.string().nullable(),
  keychain: KeychainHealthSchema,
  agents: z.array(AgentConnectionSchema),
  /** The authority this Link talks to, and whether it is reachable now. */
  authority: z
    .object({
      url: z.string(),
      mode: z.enum(["embedded", "remote"]),
      connected: z.boolean(),
      error: z.string().nullable(),
      /** How this Link proves who it is: an OAuth sign-in, a locally provisioned token, or nothing yet. */
      account: AccountKindSchema,
      /** Set when the sign-in ended (refresh token expired or revoked): the person must sign in again. */
      signInError: z.string().nullable(),
    })
    .nullable(),
  discoveryFile: z.string(),
  logFile: z.string(),
  /**
   * The pyper-sdk endpoints on loopback HTTPS (issue 13 item 9): their port and the certificate
   * agents trust for `https://127.0.0.1:<port>/` only. Null while they are not listening; absent
   * from Links that predate them. `piper-link pyper` prints PiperClient's settings from this.
   */
  pyper: z.object({ port: z.number().int(), certFile: z.string() }).nullable().optional(),
  /**
   * How a window should lead sign-in: `device` (a code entered on any device) when the Link's machine
   * shows the person nothing (an SSH session, a server without a display), where a browser sign-in
   * would redirect to this machine's loopback, a dead end for a browser elsewhere (e.g. through
   * `ssh -L`); `browser` otherwise. Absent from older Links: `browser`.
   */
  signInFlow: z.enum(["browser", "device"]).optional(),
  /**
   * Who is signed in (issue 15 item 7), as the authority's `GET /v1/me` said after sign-in or at
   * start: the account's display name and email (null for a token-only local user). Null when
   * nobody is signed in or the authority has not said yet; absent from Links that predate it.
   */
  account: z.object({ name: z.string(), email: z.string().nullable() }).nullable().optional(),
  /** This machine's name as registered at the authority (its instance's name); null when unknown. */
  machine: z.string().nullable().optional(),
  /** The locked vault (DESIGN.md section 9): locked or not, which proofs of presence count, the idle lock. */
  vault: VaultStatusSchema,
  /** Risks the Link can see but not remove (an X11 session, ptrace_scope 0, a writable install…). */
  risks: z.array(ResidualRiskSchema),
});
export type LinkStatus = z.infer<typeof LinkStatusSchema>;

const Empty = z.object({}).strict();

/** What the person can change in Settings; kept by the core in the data directory. */
export const LinkSettingsSchema = z.object({
  /** Show a desktop notification for each new pending request (Electron). */
  notifications: z.boolean(),
  /** Start Piper Link when the person logs in (login item / XDG autostart, applied by the shell). */
  startAtLogin: z.boolean(),
});
export type LinkSettings = z.infer<typeof LinkSettingsSchema>;
export const DEFAULT_SETTINGS: LinkSettings = { notifications: true, startAtLogin: false };

/** One item's outcome in `approveRequests`: its grant, or why it was not approved. */
export const ApproveItemResultSchema = z.discriminatedUnion("ok", [
  z.object({ requestId: z.string(), ok: z.literal(true), grant: GrantViewSchema }),
  z.object({
    requestId: z.string(),
    ok: z.literal(false),
    error: z.object({ code: ErrorCodeSchema, message: z.string() }),
  }),
]);
export type ApproveItemResult = z.infer<typeof ApproveItemResultSchema>;

/** The control API: method name -> params and result schemas. */
/**
 * An activity page cursor as the authority hands it out (`nextCursor`, an audit event id: "ev_",
 * a 10-character base-36 time, 12 hex characters; src/server/ids.ts). Anything else (a date, a
 * typo) is refused instead of silently matching nothing.
 */
export const AuditCursorSchema = z.string().regex(/^ev_[0-9a-z]{10}[0-9a-f]{12}$/, "not an activity cursor");

export const ControlMethods = {
  status: { params: Empty, result: LinkStatusSchema },
  setInstanceId: {
    params: z.object({ instanceId: z.string().trim().min(1).max(256) }).strict(),
    result: LinkStatusSchema,
  },
  logout: { params: Empty, result: LinkStatusSchema },
  shutdown: { params: Empty, result: z.object({ stopping: z.literal(true) }) },
  /**
   * A single-use code for the browser UI (issue 16 item 8): 128 random bits, valid 60 s, usable
   * once, held only in the Link's memory. `url` is `http://127.0.0.1:PORT/ui/#code=<code>`; the
   * page trades the code for the control token over the control WebSocket (`{type:"auth", code}`).
   */
  uiLoginCode: { params: Empty, result: z.object({ code: z.string(), url: z.string(), expiresAt: z.string() }) },
  /** Starts a sign-in (browser PKCE, or a device code with `device`); `loginWait` awaits it. */
  loginStart: {
    params: z.object({ device: z.boolean().default(false) }).strict(),
    result: z.object({
      loginId: z.string(),
      kind: z.enum(["browser", "device"]),
      authorizeUrl: z.string().nullable(),
      verificationUri: z.string().nullable(),
      verificationUriComplete: z.string().nullable(),
      userCode: z.string().nullable(),
    }),
  },
  loginWait: {
    params: z
      .object({
        loginId: z.string().min(1).max(64),
        timeoutMs: z
          .number()
          .int()
          .min(1000)
          .max(15 * 60_000)
          .default(5 * 60_000),
      })
      .strict(),
    result: LinkStatusSchema,
  },
  devSignIn: { params: z.object({ name: z.string().min(1).max(200).optional() }).strict(), result: LinkStatusSchema },
  listRequests: {
    params: z.object({ status: z.enum(["pending", "all"]).default("pending") }).strict(),
    result: z.array(RequestViewSchema),
  },
  /**
   * Widening calls carry `presence`, a proof the person is there, bound to this exact call: without
   * one they fail with `presence_required`, with a wrong one `presence_failed` (DESIGN.md section 9).
   */
  approveRequest: {
    params: ApproveBodySchema.extend({
      requestId: z.string().min(1).max(128),
      presence: PresenceProofSchema.optional(),
    }).strict(),
    result: GrantViewSchema,
  },
  /**
   * Approves several requests with ONE set of terms (a batch card's "Approve all"): each item gets
   * its own grant, with its own secret (`secretName`, default: the variable's name). Items fail one
   * by one with a stable code (`secret_not_found`, `requester_gone`, `conflict` when no longer
   * pending, `not_found`…); the others are approved regardless. Results are in the items' order.
   */
  approveRequests: {
    params: ApproveBodySchema.omit({ secretName: true })
      .extend({
        items: z
          .array(z.object({ requestId: z.string().min(1).max(128), secretName: SecretNameSchema.optional() }).strict())
          .min(1)
          .max(32),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: z.object({ results: z.array(ApproveItemResultSchema) }),
  },
  denyRequest: { params: z.object({ requestId: z.string().min(1).max(128) }).strict(), result: RequestViewSchema },
  listGrants: { params: z.object({ all: z.boolean().default(false) }).strict(), result: z.array(GrantViewSchema) },
  revokeGrant: { params: z.object({ grantId: z.string().min(1).max(128) }).strict(), result: GrantViewSchema },
  /** Replaces a grant's policy limits (hours, weekdays, uses per hour/day, end date); `null` removes them. */
  updateGrantPolicy: {
    params: z
      .object({
        grantId: z.string().min(1).max(128),
        policy: GrantPolicySchema.nullable(),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: GrantViewSchema,
  },
  listSecrets: { params: Empty, result: z.array(SecretViewSchema) },
  /** Adds or replaces a secret; `hosts` sets where it may ever be sent (absent: unchanged on replace, none when new). */
  setSecret: {
    params: z
      .object({
        name: SecretNameSchema,
        value: SecretValueSchema,
        hosts: SecretHostsSchema.nullable().optional(),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: SecretViewSchema,
  },
  /** The hosts a secret may ever be sent to by the Link's calls; `null`: any host a grant allows. */
  setSecretHosts: {
    params: z
      .object({ name: SecretNameSchema, hosts: SecretHostsSchema.nullable(), presence: PresenceProofSchema.optional() })
      .strict(),
    result: SecretViewSchema,
  },
  deleteSecret: {
    params: z.object({ name: SecretNameSchema }).strict(),
    result: z.object({ deleted: z.literal(true) }),
  },
  getSettings: { params: Empty, result: LinkSettingsSchema },
  /** Turning notifications off hides new requests from the person: that needs `presence`. */
  updateSettings: {
    params: LinkSettingsSchema.partial().extend({ presence: PresenceProofSchema.optional() }).strict(),
    result: LinkSettingsSchema,
  },
  /** Creates the vault on a first run (the window's first open): `new` state only; the passphrase's strength is checked. */
  createVault: {
    params: z.object({ passphrase: z.string().min(1).max(1024), pin: PinSchema.optional() }).strict(),
    result: LinkStatusSchema,
  },
  /** Unlocks with the passphrase (wrong: `presence_failed`, slowed by the KDF itself). */
  unlock: { params: z.object({ passphrase: z.string().min(1).max(1024) }).strict(), result: LinkStatusSchema },
  /** Locks now: keys leave memory, agents get `locked`. Needs no proof. */
  lock: { params: Empty, result: LinkStatusSchema },
  /** Sets or changes the approval PIN; the proof must be the passphrase (or a passkey). */
  setPin: {
    params: z.object({ pin: PinSchema, presence: PresenceProofSchema.optional() }).strict(),
    result: LinkStatusSchema,
  },
  /** How long without the person before the Link locks, in minutes (5 min to 7 days); a longer time needs `presence`. */
  setIdleLock: {
    params: z
      .object({
        minutes: z
          .number()
          .int()
          .min(5)
          .max(7 * 24 * 60),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: LinkStatusSchema,
  },
  /**
   * A challenge for a passkey proof of `method` with `params` (the exact call it will prove):
   * WebAuthn request options whose challenge is bound to that call, single-use, valid 2 minutes.
   */
  presenceChallenge: {
    params: z.object({ method: z.string().min(1).max(64), params: z.record(z.string(), z.unknown()) }).strict(),
    result: z.object({ challengeId: z.string(), expiresAt: z.string(), options: z.record(z.string(), z.unknown()) }),
  },
  /**
   * A challenge for a `pin-mac` proof of `method` with `params` (the CLI's form of the PIN: the PIN
   * itself never crosses the channel): the PIN verifier's scrypt parameters and a nonce bound to
   * that exact call, single-use, valid 2 minutes.
   */
  pinChallenge: {
    params: z.object({ method: z.string().min(1).max(64), params: z.record(z.string(), z.unknown()) }).strict(),
    result: PinChallengeSchema,
  },
  /** WebAuthn registration options for a new passkey (RP ID `localhost`, user verification required). */
  passkeyRegistrationOptions: {
    params: Empty,
    result: z.object({ challengeId: z.string(), options: z.record(z.string(), z.unknown()) }),
  },
  /** Registers a passkey from the browser's answer; the proof must be the passphrase or the PIN. */
  passkeyRegister: {
    params: z
      .object({
        challengeId: z.string().min(1).max(128),
        response: z.record(z.string(), z.unknown()),
        name: z.string().min(1).max(100).default("Passkey"),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: LinkStatusSchema,
  },
  /** Grants approved before proofs of presence existed (after an upgrade), `--bind any` ones first. */
  listLegacyGrants: { params: Empty, result: z.array(GrantViewSchema) },
  /** Keeps the listed legacy grants (a yes: needs `presence`); the others stay listed until kept or revoked. */
  keepLegacyGrants: {
    params: z
      .object({
        grantIds: z.array(z.string().min(1).max(128)).min(1).max(500),
        presence: PresenceProofSchema.optional(),
      })
      .strict(),
    result: z.object({ kept: z.number().int() }),
  },
  listActivity: {
    params: z
      .object({
        limit: z.number().int().min(1).max(500).default(50),
        before: AuditCursorSchema.optional(),
        agent: z.string().max(128).optional(),
        variable: z.string().max(256).optional(),
        /** A secret's name, exact. */
        secret: z.string().max(256).optional(),
        /** Only calls the Link made to this host (`host` or `host:port`). */
        host: z.string().max(300).optional(),
      })
      .strict(),
    result: AuditPageSchema,
  },
} as const;
export type ControlMethod = keyof typeof ControlMethods;
export const CONTROL_METHOD_NAMES = Object.keys(ControlMethods) as ControlMethod[];
export type ControlParams<M extends ControlMethod> = z.infer<(typeof ControlMethods)[M]["params"]>;
export type ControlResult<M extends ControlMethod> = z.infer<(typeof ControlMethods)[M]["result"]>;

export type LoginStarted = ControlResult<"loginStart">;

/** What the UI and CLI may ask of the Link; implemented over IPC (Electron) or the control socket. */
export type LinkApi = {
  [M in ControlMethod]: (params: ControlParams<M>) => Promise<ControlResult<M>>;
};

/**
 * The first frame on `/v1/control`: the per-start control token (the CLI, a page that already has
 * it), or a single-use UI code from `uiLoginCode` (a page opened by `piper-link ui`), which the
 * Link answers with the token in `authenticated` so the page can reconnect later.
 */
export const ControlAuthSchema = z.union([
  z.object({ type: z.literal("auth"), token: z.string().min(1).max(512) }).strict(),
  z.object({ type: z.literal("auth"), code: z.string().min(1).max(128) }).strict(),
]);
export const ControlCallSchema = z.object({
  type: z.literal("call"),
  id: RequestIdSchema,
  method: z.enum(CONTROL_METHOD_NAMES as [ControlMethod, ...ControlMethod[]]),
  params: z.unknown().default({}),
});
export const ControlClientMessageSchema = z.union([ControlAuthSchema, ControlCallSchema]);
export type ControlClientMessage = z.infer<typeof ControlClientMessageSchema>;

export const ControlEventSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("status"), status: LinkStatusSchema }),
  z.object({ kind: z.literal("authority"), event: AuthorityEventSchema }),
  z.object({ kind: z.literal("settings"), settings: LinkSettingsSchema }),
  /** Someone followed a link to a pending request (pyper-sdk's grant page): show it. */
  z.object({ kind: z.literal("show"), view: z.literal("requests"), requestId: z.string().nullable() }),
]);
export type ControlEvent = z.infer<typeof ControlEventSchema>;

export const ControlServerMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("authenticated"),
    link: z.object({ version: z.string() }),
    /** Present only after a UI code: the control token the page keeps (sessionStorage) to reconnect. */
    token: z.string().optional(),
  }),
  z.object({ type: z.literal("result"), id: RequestIdSchema, result: z.unknown() }),
  z.object({
    type: z.literal("error"),
    id: RequestIdSchema.nullable(),
    code: ErrorCodeSchema,
    message: z.string(),
  }),
  z.object({ type: z.literal("event"), event: ControlEventSchema }),
]);
export type ControlServerMessage = z.infer<typeof ControlServerMessageSchema>;

/**
 * What a window needs from the Link: the API plus its pushed events. Provided by the preload bridge
 * in Electron and by the control WebSocket in a browser.
 */
export interface LinkClient {
  api: LinkApi;
  subscribe(listener: (event: ControlEvent) => void): () => void;
}

/** The file (mode 0600, beside the discovery file) that lets the local CLI reach the control channel. */
export const ControlFileSchema = z.object({
  url: z.string(),
  token: z.string(),
  pid: z.number().int().positive(),
});
export type ControlFile = z.infer<typeof ControlFileSchema>;

/**
 * The address `piper-link ui` opens: the browser UI of a Link on `port` with a single-use code
 * from `uiLoginCode` in the fragment (issue 16 item 8). The code is worthless after one use or
 * 60 s, so the opener's argv (visible in `ps`) carries nothing reusable.
 */
export function uiCodeAddress(port: number, code: string): string {
  return `http://127.0.0.1:${port}/ui/#code=${code}`;
}

/**
 * The address of the browser UI of a Link on `port` with the control token, printed by a
 * foreground `start` on its own terminal only (never passed to another process). The control token rides in the fragment, which
 * browsers never send to a server, so it appears in no request line and no log.
 */
export function uiAddress(port: number, token: string): string {
  return `http://127.0.0.1:${port}/ui/#token=${token}`;
}

/** Hides an instance ID except for its prefix and last four characters. */
export function redactInstanceId(id: string): string {
  const prefix = /^[a-z]+_/.exec(id)?.[0] ?? "";
  const tail = id.length - prefix.length > 8 ? id.slice(-4) : "";
  return `${prefix}${"•".repeat(6)}${tail}`;
}

/**
 * The answer of one control call as a value (issue 12 item 4): the control channel turns it into a
 * `result`/`error` frame, the Electron IPC handler returns it as is (an Error thrown across IPC would
 * lose its `code`), and `unwrapControlOutcome` turns it back into a result or a `LinkError`.
 */
export const ControlOutcomeSchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: ErrorCodeSchema, message: z.string(), retryable: z.boolean().optional() }),
  }),
]);
export type ControlOutcome = z.infer<typeof ControlOutcomeSchema>;

/** True when `value` names a control method (an own key of `ControlMethods`). */
export function isControlMethod(value: unknown): value is ControlMethod {
  return typeof value === "string" && Object.hasOwn(ControlMethods, value);
}

/**
 * The action a proof of presence for `method` with `params` is bound to (`presenceAction`): the
 * params read as the call itself reads them (its schema's defaults filled in), without the proof, so
 * a challenge issued for a call and the call itself name exactly the same action. Throws a
 * `bad_request` LinkError for an unknown method or params the method would refuse.
 */
export function controlAction(method: string, params: Record<string, unknown>): string {
  if (!isControlMethod(method))
    throw new LinkError("bad_request", `Unknown control method ${JSON.stringify(method.slice(0, 64))}.`);
  const parsed = ControlMethods[method].params.safeParse(params);
  if (!parsed.success) throw new LinkError("bad_request", describeValidation(methodWords(method), parsed.error.issues));
  const terms: Record<string, unknown> = { ...parsed.data };
  return presenceAction(method, terms);
}

/** Calls `api[method]` with params already validated for that method; results are checked by the caller. */
function invoke<M extends ControlMethod>(api: LinkApi, method: M, params: ControlParams<M>): Promise<ControlResult<M>> {
  const fn: LinkApi[M] = api[method];
  return fn(params);
}

/**
 * The one dispatch of a control call, used by the control channel and by the Electron IPC handler:
 * an unknown `method` or `rawParams` failing the method's params schema -> `bad_request`; then
 * `api[method]` runs and its result is checked against the method's result schema. A thrown
 * `LinkError` keeps its code and message; anything else becomes `internal_error` (reported to
 * `onUnexpected`, e.g. for the log, with a sentence that names the method but no internals).
 * Never throws.
 */
export async function dispatchControl(
  api: LinkApi,
  method: unknown,
  rawParams: unknown,
  onUnexpected?: (method: string, err: unknown) => void,
): Promise<ControlOutcome> {
  if (!isControlMethod(method)) {
    return {
      ok: false,
      error: { code: "bad_request", message: `Unknown control method ${JSON.stringify(String(method).slice(0, 64))}.` },
    };
  }
  const spec = ControlMethods[method];
  const params = spec.params.safeParse(rawParams ?? {});
  if (!params.success) {
    // A sentence a person can read (the window and the CLI show it); the code says "bad_request".
    return {
      ok: false,
      error: { code: "bad_request", message: describeValidation(methodWords(method), params.error.issues) },
    };
  }
  try {
    const result = spec.result.safeParse(await invoke(api, method, params.data));
    if (result.success) return { ok: true, result: result.data };
    onUnexpected?.(method, new Error(`invalid result: ${result.error.message}`));
  } catch (err) {
    if (err instanceof LinkError)
      return { ok: false, error: { code: err.code, message: err.message, retryable: err.retryable } };
    onUnexpected?.(method, err);
  }
  return { ok: false, error: { code: "internal_error", message: `Piper Link could not run ${method}; see its log.` } };
}

/**
 * The result of `method` from an outcome that crossed a boundary (IPC), validated: the method's result
 * on success; throws a `LinkError` with the outcome's code on failure, or `internal_error` when the
 * value is not an outcome or the result does not fit the method's result schema.
 */
export function unwrapControlOutcome<M extends ControlMethod>(method: M, value: unknown): ControlResult<M> {
  const outcome = ControlOutcomeSchema.safeParse(value);
  if (!outcome.success) throw new LinkError("internal_error", `Piper Link sent an invalid answer to ${method}.`);
  if (!outcome.data.ok) {
    const e = outcome.data.error;
    throw new LinkError(e.code, e.message, e.retryable === undefined ? undefined : { retryable: e.retryable });
  }
  const result = ControlMethods[method].result.safeParse(outcome.data.result);
  if (!result.success) throw new LinkError("internal_error", `Piper Link sent an invalid answer to ${method}.`);
  // Parsed by method's own result schema just above; TypeScript cannot narrow the union by a generic key.
  return result.data as ControlResult<M>;
}

/** One generic call of the control API, as each transport provides it. */
export type ControlCall = <M extends ControlMethod>(method: M, params: ControlParams<M>) => Promise<ControlResult<M>>;

/** Checks that every control method is present, so the object may be used as a `LinkApi`. */
function isLinkApi(partial: Partial<Record<ControlMethod, unknown>>): partial is LinkApi {
  return CONTROL_METHOD_NAMES.every((m) => typeof partial[m] === "function");
}

/**
 * A `LinkApi` whose every method (one per key of `ControlMethods`) forwards to `call`. Used by the
 * window over IPC (renderer/main.tsx) and by the browser's control WebSocket (socket-link.ts).
 */
export function createLinkApi(call: ControlCall): LinkApi {
  const api: Partial<Record<ControlMethod, unknown>> = {};
  for (const method of CONTROL_METHOD_NAMES)
    api[method] = (params: ControlParams<typeof method>) => call(method, params);
  // TypeScript cannot relate a loop's writes to a mapped type; the guard checks completeness at run time.
  if (!isLinkApi(api)) throw new Error("createLinkApi: a control method is missing");
  return api;
}

/**
 * The agent protocol on WebSocket `/v1/link` (DESIGN.md section 4): every frame an agent may send
 * and every frame the Link answers with, as zod schemas with their derived types. The Link and the
 * SDK both validate against these; nothing else defines the wire format (docs/protocol.md is
 * generated from this file: `npm run docs:protocol`).
 */
import { z } from "zod";
import { CallChunkSchema, CallEndSchema, CallHeadSchema, CallMethodSchema, CallSchema, CancelSchema } from "./calls.js";
import { ErrorCodeSchema } from "./errors.js";
import { GrantBindingKindSchema, GrantModeSchema, GrantPolicySchema } from "./grant-terms.js";

/** Close codes the Link uses on agent and control connections. Documented in README.md. */
export const CloseCode = {
  /** The agent or the Link closed normally. */
  normal: 1000,
  /** The Link is shutting down; reconnect later. */
  goingAway: 1001,
  /** A frame was larger than the limit (64 KiB). Sent by the WebSocket layer itself. */
  messageTooBig: 1009,
  /** No `hello` (agent) or `auth` (control) arrived within the handshake timeout. */
  handshakeTimeout: 4000,
  /** No message for longer than the idle timeout. */
  idleTimeout: 4001,
  /** Too many malformed or invalid frames. */
  protocolErrors: 4002,
  /** Too many messages in too short a time, repeatedly. */
  rateLimited: 4003,
  /** The control channel was given a wrong or missing token. */
  unauthorized: 4004,
  /** This process holds more connections than the per-process limit allows. */
  tooManyConnections: 4005,
  /** The process on the other end belongs to another user of this machine. */
  foreignUser: 4006,
} as const;
export type CloseCodeName = keyof typeof CloseCode;

/** Largest frame the Link accepts, in bytes. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** A request id chosen by the client and echoed in the reply. */
export const RequestIdSchema = z.union([z.string().min(1).max(128), z.number().int()]);
export type RequestId = z.infer<typeof RequestIdSchema>;

const Name = z.string().trim().min(1).max(200);

/** Variable names as an agent sends them (before normalization). */
export const VariableSchema = z.string().min(1).max(256);

/** Whom one of Piper Link's own commands asks on behalf of (see `Hello.actingFor`). */
export const ActingForSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("command"),
    executable: z.string().min(1).max(4096),
    script: z.string().min(1).max(4096).nullable(),
    cwd: z.string().min(1).max(4096),
    commandLine: z.array(z.string().max(4096)).max(256),
  }),
  z.object({
    kind: z.literal("parent"),
    /**
     * Name the first ancestor past the launchers that only started this command (a shell's
     * `-c 'piper-link mcp'` line, `npm exec`/`npx`): the MCP client, not npx's shell. Absent or
     * false: the parent itself (`piper-link call` asks for the script or shell that runs it).
     */
    pastLaunchers: z.boolean().optional(),
  }),
]);
export type ActingFor = z.infer<typeof ActingForSchema>;

/**
 * `hello`: the first frame on every connection; nothing else is answered before it (`hello_required`).
 * Answered with `welcome`, or an `error` (`not_logged_in`, `locked`, `unsupported_protocol`).
 */
export const HelloSchema = z.object({
  type: z.literal("hello"),
  id: RequestIdSchema,
  /** The protocol version the agent speaks; this Link speaks `PROTOCOL_VERSION` (1). */
  protocol: z.number().int().positive(),
  /** What the agent says it is: shown to the person as the agent's claim, next to the program the Link verified. */
  agent: z.object({
    /** A stable name the agent chooses for itself; grants bound to the client (the weakest binding) match it. */
    clientId: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:@-]+$/, "clientId may contain letters, digits and . _ : @ - only"),
    /** A display name for people. */
    name: Name.optional(),
  }),
  /** The SDK that speaks for the agent, for the Link's log. */
  sdk: z.object({ name: Name, version: z.string().min(1).max(64) }).optional(),
  /**
   * Only Piper Link's own commands may send this; the Link ignores it from any other program (it
   * checks the peer's executable and script, read from the OS). `piper-link run` names the command
   * it is about to start (absolute executable, script for interpreters, working directory), so the
   * grant binds to that command; `piper-link mcp` names its parent past any launcher (the MCP client
   * that started it, also through `sh -c` or `npx`), which the Link then reads from the OS itself.
   */
  actingFor: ActingForSchema.optional(),
});
export type Hello = z.infer<typeof HelloSchema>;

/**
 * `resolve`: the value of one secret. Answered with `secret` at once when a live grant allows it;
 * otherwise the Link asks the person (`pending`) and, when `wait` is true, answers `secret` or an
 * `error` (`denied`, `timeout`, `requester_gone`, `secret_not_found`…) once they decide.
 */
export const ResolveSchema = z.object({
  type: z.literal("resolve"),
  id: RequestIdSchema,
  /** The variable the agent wants, as it names it (normalized for lookup, see `normalizeVariable`). */
  variable: VariableSchema,
  /** Why the agent needs it, shown to the person. */
  reason: z.string().max(1000).optional(),
  /** Wait for the person's decision; false answers `error` `grant_needed` after `pending`. */
  wait: z.boolean().default(true),
  /** How long to wait for the person, in ms (default `AGENT_DEFAULTS.approvalWaitMs`); then `timeout`. */
  timeoutMs: z
    .number()
    .int()
    .min(0)
    .max(24 * 60 * 60 * 1000)
    .optional(),
});
export type Resolve = z.infer<typeof ResolveSchema>;

/** Most variables one `resolveMany` may name (one approval card; the window lists each). */
export const MAX_RESOLVE_MANY = 32;

/**
 * `resolveMany`: several variables in one message, with partial results (SecFlow's resolve-many):
 * when any lacks a grant the Link answers ONE `pending` frame naming every request it made (they
 * share a batch, shown as one card in the window), then ONE `secrets` frame with a result per
 * variable. Variables are answered under the names the agent sent; repeats are answered once.
 */
export const ResolveManySchema = z.object({
  type: z.literal("resolveMany"),
  id: RequestIdSchema,
  /** The variables, as the agent names them; each is answered under this name in `secrets`. */
  variables: z.array(VariableSchema).min(1).max(MAX_RESOLVE_MANY),
  /** Why the agent needs them, shown to the person once for all. */
  reason: z.string().max(1000).optional(),
  /** Wait for the person's decision; false answers `grant_needed` for each variable without a grant. */
  wait: z.boolean().default(true),
  /** How long to wait for the person, in ms (default `AGENT_DEFAULTS.approvalWaitMs`). */
  timeoutMs: z
    .number()
    .int()
    .min(0)
    .max(24 * 60 * 60 * 1000)
    .optional(),
});
export type ResolveMany = z.infer<typeof ResolveManySchema>;

/**
 * `grants`: which secrets this agent may use now, without asking the person — the names of its live
 * grants and what each allows. Answered with `grants.list`. Only the asking agent's own grants
 * (its client ID on this instance; a process-bound grant only to that process); never a value.
 * Piper Link's MCP server answers its `list_secrets` tool with it.
 */
export const GrantsRequestSchema = z.object({ type: z.literal("grants"), id: RequestIdSchema });
export type GrantsRequest = z.infer<typeof GrantsRequestSchema>;

/**
 * Checks an agent makes without the value (never answered with one, never a prompt to the person):
 * - `validate`: is the name well formed, and is one of the person's secrets mapped to it (through a
 *   live grant of this agent naming its secret, else a secret of the same normalized name)?
 *   Answered with `validate.result`.
 * - `metadata`: that secret's name, host list and when it was created and last changed. Answered
 *   with `metadata.result`, or `error` `secret_not_found`.
 * - `permissionCheck`: does a live grant exist for this program (the asking connection's identity,
 *   as for `resolve`) and this variable, and with what mode and terms. Answered with
 *   `permissionCheck.result`.
 * The agent must already know the name it asks about: nothing here lists the person's secrets.
 */
export const ValidateRequestSchema = z.object({
  type: z.literal("validate"),
  id: RequestIdSchema,
  variable: VariableSchema,
});
export type ValidateRequest = z.infer<typeof ValidateRequestSchema>;
/** `metadata`: what an agent may know of the secret `variable` maps to (never its value); see `validate`. */
export const MetadataRequestSchema = z.object({
  type: z.literal("metadata"),
  id: RequestIdSchema,
  variable: VariableSchema,
});
export type MetadataRequest = z.infer<typeof MetadataRequestSchema>;
/** `permissionCheck`: whether this program holds a live grant for `variable`, and its terms; see `validate`. */
export const PermissionCheckRequestSchema = z.object({
  type: z.literal("permissionCheck"),
  id: RequestIdSchema,
  variable: VariableSchema,
});
export type PermissionCheckRequest = z.infer<typeof PermissionCheckRequestSchema>;
/** The three checks above, as the Link's handler of them takes them. */
export type CheckRequest = ValidateRequest | MetadataRequest | PermissionCheckRequest;

/**
 * `requestAccess`: ask the person for the right to use a secret in calls to one destination, without
 * making the call and without the value ever leaving the Link (Piper Link's MCP server answers its
 * `request_access` tool with it). Answered with one `access` frame: `granted` when a live grant of
 * this agent already allows `method` to `url` (no request is made), else `pending` with the request
 * the person now sees — the same request a `call` naming them would make. Never waits; ask again, or
 * check with `grants`, to see the answer. An `error` frame for a malformed URL or when the Link
 * cannot ask (`not_logged_in`, `authority_unavailable`, `secret_not_found`…).
 */
export const RequestAccessSchema = z.object({
  type: z.literal("requestAccess"),
  id: RequestIdSchema,
  variable: VariableSchema,
  method: CallMethodSchema.default("GET"),
  /** The https:// URL the agent wants to call with the secret. */
  url: z.string().min(1).max(8192),
  /** Shown to the person with the method and URL. */
  reason: z.string().max(500).optional(),
});
export type RequestAccess = z.infer<typeof RequestAccessSchema>;

/**
 * Every agent -> Link message. An unknown `type` is answered with `unknown_type`. `call` and
 * `cancel` (calls made for the agent with secrets it never sees) are defined in calls.ts.
 */
export const AgentMessageSchema = z.discriminatedUnion("type", [
  HelloSchema,
  ResolveSchema,
  ResolveManySchema,
  CallSchema,
  CancelSchema,
  GrantsRequestSchema,
  ValidateRequestSchema,
  MetadataRequestSchema,
  PermissionCheckRequestSchema,
  RequestAccessSchema,
]);
export type AgentMessage = z.infer<typeof AgentMessageSchema>;
export const AGENT_MESSAGE_TYPES: ReadonlySet<string> = new Set([
  "hello",
  "resolve",
  "resolveMany",
  "call",
  "cancel",
  "grants",
  "validate",
  "metadata",
  "permissionCheck",
  "requestAccess",
]);

/** The answer to `hello` when the Link can serve the agent. */
export const WelcomeSchema = z.object({
  type: z.literal("welcome"),
  id: RequestIdSchema,
  /** The signed-in person's instance of Piper Link (pyper-sdk's instance ID); a new one ends every grant. */
  instanceId: z.string(),
  /** The Link's own version. */
  link: z.object({ version: z.string() }),
  /** The authority the Link is signed in to (its URL), or null for none. */
  authority: z.string().nullable(),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

/** `ready`: signed in and unlocked, with an instance ID; `logged_out`: no instance (see the frame's `reason`). */
export const ContextStateSchema = z.enum(["ready", "logged_out"]);
export type ContextState = z.infer<typeof ContextStateSchema>;

/** Pushed (no `id`) whenever the Link's instance appears or goes away: signing in or out, locking, unlocking. */
export const ContextPushSchema = z.object({
  type: z.literal("context"),
  instanceId: z.string().nullable(),
  state: ContextStateSchema,
  /** Why there is no instance: `not_logged_in`, or `locked` while the person has not unlocked the Link. Absent from older Links. */
  reason: z.enum(["not_logged_in", "locked"]).optional(),
});
export type ContextPush = z.infer<typeof ContextPushSchema>;

/**
 * The person has been asked: no grant allowed the request yet. The answer follows in a later frame
 * (when the agent waits).
 */
export const PendingSchema = z.object({
  type: z.literal("pending"),
  id: RequestIdSchema,
  /** The request to approve; for `resolveMany`, the first of `requestIds`. */
  requestId: z.string(),
  /** Where the person approves it, for the agent to tell its user (`Piper Link`). */
  approveIn: z.string(),
  /** `resolveMany` only: every request the message made or joined (one card in the window). */
  requestIds: z.array(z.string()).optional(),
  /** `resolveMany` only: the batch the requests share (`RequestView.batchId`). */
  batchId: z.string().optional(),
});
export type Pending = z.infer<typeof PendingSchema>;

/** The answer to `resolve`: the value, under the grant that allowed it. */
export const SecretSchema = z.object({
  type: z.literal("secret"),
  id: RequestIdSchema,
  /** The variable as the agent sent it. */
  variable: z.string(),
  value: z.string(),
  grantId: z.string(),
  /** When the grant ends (ISO 8601), or null: until revoked or the process exits. */
  expiresAt: z.string().nullable(),
});
export type Secret = z.infer<typeof SecretSchema>;

/** One variable's answer in a `secrets` frame: its value, or why there is none. */
export const VariableResultSchema = z.union([
  z.object({ value: z.string(), grantId: z.string(), expiresAt: z.string().nullable() }),
  z.object({ error: z.object({ code: ErrorCodeSchema, message: z.string(), retryable: z.boolean() }) }),
]);
export type VariableResult = z.infer<typeof VariableResultSchema>;

/**
 * The answer to `resolveMany`: a result per variable (keyed by the name the agent sent), partial by
 * design — e.g. `{A: {value…}, B: {error: {code: "secret_not_found"…}}, C: {error: {code: "denied"…}}}`.
 * An `error` frame instead means the whole message failed (not signed in, bad request).
 */
export const SecretsSchema = z.object({
  type: z.literal("secrets"),
  id: RequestIdSchema,
  results: z.record(z.string(), VariableResultSchema),
});
export type Secrets = z.infer<typeof SecretsSchema>;

/** A request failed: a stable `code`, a sentence a person can act on, and whether trying again later may work. */
export const ErrorFrameSchema = z.object({
  type: z.literal("error"),
  /** The id of the request this answers; null when the frame could not be parsed far enough. */
  id: RequestIdSchema.nullable(),
  code: ErrorCodeSchema,
  message: z.string(),
  retryable: z.boolean(),
});
export type ErrorFrame = z.infer<typeof ErrorFrameSchema>;

/**
 * One live grant as its agent sees it: the variable name (normalized, see `normalizeVariable`; any
 * spelling that normalizes to it resolves), what the grant allows
 * (`read` the value, or `use` it only in calls to the listed destinations; null when the authority
 * does not say, which older authorities do not), and when it ends (ms since the epoch; null: until
 * revoked or the process exits).
 */
export const AgentGrantSchema = z.object({
  variable: z.string(),
  mode: GrantModeSchema.nullable(),
  expiresAt: z.number().nullable(),
});
export type AgentGrant = z.infer<typeof AgentGrantSchema>;

/** The answer to `grants`. */
export const GrantsListSchema = z.object({
  type: z.literal("grants.list"),
  id: RequestIdSchema,
  grants: z.array(AgentGrantSchema),
});
export type GrantsList = z.infer<typeof GrantsListSchema>;

/** The longest normalized variable name that can name a secret (shared/authority.ts `SecretNameSchema`). */
export const MAX_SECRET_NAME_CHARS = 128;

/**
 * The answer to `validate`. `normalized` is `normalizeVariable(variable)`; `wellFormed` is false
 * (with `problem`, a sentence) when it is empty or longer than a secret name may be. `secretName`
 * is the person's secret the variable maps to, or null (`mapped` false) when there is none.
 */
export const ValidateResultSchema = z.object({
  type: z.literal("validate.result"),
  id: RequestIdSchema,
  variable: z.string(),
  normalized: z.string(),
  wellFormed: z.boolean(),
  problem: z.string().nullable(),
  mapped: z.boolean(),
  secretName: z.string().nullable(),
});
export type ValidateResult = z.infer<typeof ValidateResultSchema>;

/** What an agent may know of a secret: never its value. Times are ISO 8601; `hosts` null: no host list of its own. */
export const SecretMetadataSchema = z.object({
  name: z.string(),
  hosts: z.array(z.string()).nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SecretMetadata = z.infer<typeof SecretMetadataSchema>;

/** The answer to `metadata`. */
export const MetadataResultSchema = z.object({
  type: z.literal("metadata.result"),
  id: RequestIdSchema,
  variable: z.string(),
  secret: SecretMetadataSchema,
});
export type MetadataResult = z.infer<typeof MetadataResultSchema>;

/**
 * A live grant's terms as its agent may see them: what it binds to, how long it lasts (`scope`;
 * `expiresAt` in ms since the epoch, null: until revoked or the process exits), what it allows
 * (`mode`, null when the authority does not say) and its policy limits.
 */
export const GrantTermsViewSchema = z.object({
  grantId: z.string(),
  secretName: z.string(),
  binding: GrantBindingKindSchema,
  scope: z.enum(["once", "duration", "until_revoked", "process"]),
  mode: GrantModeSchema.nullable(),
  policy: GrantPolicySchema.nullable(),
  expiresAt: z.number().nullable(),
});
export type GrantTermsView = z.infer<typeof GrantTermsViewSchema>;

/** The answer to `permissionCheck`: `granted` with the grant's terms, or not (`grant` null). */
export const PermissionCheckResultSchema = z.object({
  type: z.literal("permissionCheck.result"),
  id: RequestIdSchema,
  variable: z.string(),
  granted: z.boolean(),
  grant: GrantTermsViewSchema.nullable(),
});
export type PermissionCheckResult = z.infer<typeof PermissionCheckResultSchema>;

/**
 * The answer to `requestAccess` (never a value): `granted` (a live grant already allows the use;
 * `requestId` null) or `pending` (`requestId` names the request waiting for the person).
 */
export const AccessSchema = z.object({
  type: z.literal("access"),
  id: RequestIdSchema,
  variable: z.string(),
  state: z.enum(["granted", "pending"]),
  requestId: z.string().nullable(),
});
export type Access = z.infer<typeof AccessSchema>;

/** Every Link -> agent message. */
export const LinkMessageSchema = z.discriminatedUnion("type", [
  WelcomeSchema,
  ContextPushSchema,
  PendingSchema,
  SecretSchema,
  SecretsSchema,
  ErrorFrameSchema,
  CallHeadSchema,
  CallChunkSchema,
  CallEndSchema,
  GrantsListSchema,
  ValidateResultSchema,
  MetadataResultSchema,
  PermissionCheckResultSchema,
  AccessSchema,
]);
export type LinkMessage = z.infer<typeof LinkMessageSchema>;

/**
 * Normalizes a variable name the way pyper-sdk does for lookups: runs of `-` and whitespace become
 * `_`, other non-word characters are dropped, repeated `_` collapse, and the result is lower-case.
 */
export function normalizeVariable(name: string): string {
  return name
    .trim()
    .replace(/[-\s]+/g, "_")
    .replace(/[^\w]/g, "")
    .replace(/_+/g, "_")
    .toLowerCase();
}

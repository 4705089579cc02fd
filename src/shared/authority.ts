/**
 * The authority's HTTP API contract (DESIGN.md section 5), shared by the server (src/server) and the
 * Link's authority client (src/main/core): request bodies and response views as zod schemas.
 * Error bodies are `{error, error_description}` everywhere, as pyper-sdk expects.
 */
import { z } from "zod";
import { CallAuditSchema, CallMethodSchema } from "./calls.js";
import {
  DestinationRuleSchema,
  GrantBindingKindSchema,
  GrantModeSchema,
  GrantPolicySchema,
  GrantTermsSchema,
} from "./grant-terms.js";
import { PeerProcessSchema, type PeerProcess } from "./process.js";
import { VariableSchema } from "./protocol.js";

/** The OAuth client ID of Piper Link at every authority (RFC 6749 section 2.2). */
export const LINK_CLIENT_ID = "piper-link";

export const AuthorityErrorSchema = z.object({ error: z.string(), error_description: z.string() });
export type AuthorityError = z.infer<typeof AuthorityErrorSchema>;
/**
 * An error answer as a client must accept it: RFC 6749 section 5.2 (and RFC 8628 section 3.5)
 * require only `error`; `error_description` and `error_uri` are optional. Our authority always sends
 * a description (`AuthorityErrorSchema`), but the Link also signs in to standards-only servers.
 */
export const OAuthErrorSchema = z.object({
  error: z.string(),
  error_description: z.string().optional(),
  error_uri: z.string().optional(),
});

/** How long an approval lasts. `process` ties it to one process (pid + start time) of the agent. */
export const ScopeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("once") }),
  z.object({
    kind: z.literal("duration"),
    durationMs: z
      .number()
      .int()
      .min(1000)
      .max(366 * 24 * 3600 * 1000),
  }),
  z.object({ kind: z.literal("until_revoked") }),
  z.object({ kind: z.literal("process") }),
]);
export type Scope = z.infer<typeof ScopeSchema>;

export const SecretNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.-]+$/, "may contain only letters, digits, _ . and -");

/** The most requests one list of requests holds (newest first); `piper-link requests` says when it is full. */
export const REQUEST_LIST_LIMIT = 500;

/** The longest secret value, in characters (UTF-16 code units, as JavaScript counts them). */
export const SECRET_VALUE_MAX_CHARS = 32 * 1024;

/**
 * `n` with a comma every three digits ("32,768"), as `toLocaleString("en-US")` writes it, without
 * loading ICU's number formatting: this module loads with every daemon, and one `toLocaleString`
 * at load time kept about 5 MB of ICU data resident in an idle Link (issue 12 item 8).
 */
export function withThousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A secret's value, as stored: 1 to SECRET_VALUE_MAX_CHARS characters. */
export const SecretValueSchema = z
  .string()
  .min(1, "cannot be empty")
  .max(SECRET_VALUE_MAX_CHARS, `can be at most ${withThousands(SECRET_VALUE_MAX_CHARS)} characters`);

export const RequestViewSchema = z.object({
  id: z.string(),
  agentClientId: z.string(),
  agentName: z.string().nullable(),
  variable: z.string(),
  reason: z.string().nullable(),
  process: PeerProcessSchema.nullable(),
  instanceId: z.string(),
  createdAt: z.number(),
  expiresAt: z.number(),
  /** `requester_gone`: the process that asked exited before anyone decided (issue 13 item 4). */
  status: z.enum(["pending", "approved", "denied", "expired", "requester_gone"]),
  grantId: z.string().nullable(),
  /**
   * Requests an agent made together (one `resolveMany`) share a batch: the window shows them as one
   * card, approvable together. Null for a request made alone; absent from older authorities.
   */
  batchId: z.string().nullable().optional(),
  /**
   * False when the requester never waits for an answer (pyper-sdk: it raises with a grant link and
   * the script ends; the person approves, then runs it again). Such a request lives while the
   * requester's terminal session does, not just its process; a grant for it cannot bind to that
   * process. Absent from older authorities: true.
   */
  requesterWaits: z.boolean().optional(),
});
export type RequestView = z.infer<typeof RequestViewSchema>;

/** A batch id as the Link chooses it for one `resolveMany` (`batch_` + random characters). */
export const BatchIdSchema = z
  .string()
  .regex(/^batch_[A-Za-z0-9_-]{8,64}$/, "a batch id is batch_ followed by 8-64 letters, digits, _ or -");

/**
 * What a grant binds to, as shown: the kind (src/shared/grant-terms.ts), the program it was
 * approved for (executable, script, working directory) and the terminal session, where they apply.
 */
export const GrantBindingViewSchema = z.object({
  kind: GrantBindingKindSchema,
  /**
   * `commandLine` is set for inline code (`sh -c …`), whose code is part of what the grant binds to;
   * `loads` lists what else the program was told to load (PeerProcess.loads) and `contentHash` the
   * content it had when approved (absent for grants made before they were recorded).
   */
  program: z
    .object({
      executable: z.string(),
      script: z.string().nullable(),
      cwd: z.string().nullable(),
      commandLine: z.array(z.string()).nullable().optional(),
      loads: z.array(z.string()).optional(),
      contentHash: z.string().nullable().optional(),
    })
    .nullable(),
  sessionId: z.number().int().nullable(),
  /** The session leader (pid + start time) whose exit ends a session-bound grant. */
  sessionLeader: z.object({ pid: z.number().int(), startTime: z.number().nullable() }).nullable().optional(),
});
export type GrantBindingView = z.infer<typeof GrantBindingViewSchema>;

export const GrantViewSchema = z.object({
  id: z.string(),
  agentClientId: z.string(),
  agentName: z.string().nullable(),
  variable: z.string(),
  secretName: z.string(),
  /** The same words as the request's `ScopeSchema` kinds: `duration` ends at `expiresAt`. */
  scope: z.enum(["once", "duration", "until_revoked", "process"]),
  expiresAt: z.number().nullable(),
  process: z.object({ pid: z.number(), startTime: z.number().nullable() }).nullable(),
  instanceId: z.string().nullable(),
  requestId: z.string().nullable(),
  createdAt: z.number(),
  lastUsedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
  endReason: z.string().nullable(),
  /** Approved before proofs of presence existed (after an upgrade), until the person keeps it; absent from older authorities. */
  legacy: z.boolean().optional(),
  /** What the grant binds to (absent from authorities that predate bindings: treat as `client`). */
  binding: GrantBindingViewSchema.optional(),
  /** Read the value, or use it only through the Link's calls (absent: read). */
  mode: GrantModeSchema.optional(),
  policy: GrantPolicySchema.nullable().optional(),
});
export type GrantView = z.infer<typeof GrantViewSchema>;

/**
 * The hosts a secret may ever be sent to by the Link's calls (DESIGN.md section 8, issue 14 item 3):
 * host rules as in a grant's destinations (`api.openai.com`, `*.example.com`, optionally `:port`),
 * 1 to 32 of them. Null means no limit of the secret's own. Reads are not affected: the list is about
 * where the Link sends the value.
 */
export const SecretHostsSchema = z.array(DestinationRuleSchema.shape.host).min(1).max(32);
export type SecretHosts = z.infer<typeof SecretHostsSchema>;

export const SecretViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.number(),
  updatedAt: z.number(),
  /**
   * The hosts it may be sent to; null: any host a grant allows (absent from older authorities).
   * Empty only when a stored list could not be read: then no host is allowed (fail closed).
   */
  hosts: z.array(z.string()).nullable().default(null),
});
export type SecretView = z.infer<typeof SecretViewSchema>;

/**
 * The verified program behind an audit event, as the Link read it from the operating system (not
 * what the agent says it is): executable, script (for interpreters), working directory, pid. Fields
 * are null when the Link could not read them.
 */
export const AuditProgramSchema = z.object({
  executable: z.string().max(4096).nullable(),
  script: z.string().max(4096).nullable(),
  cwd: z.string().max(4096).nullable(),
  pid: z.number().int().nullable(),
});
export type AuditProgram = z.infer<typeof AuditProgramSchema>;

/** What the audit log keeps of a program identity: null for none. */
export function auditProgram(p: PeerProcess | null | undefined): AuditProgram | null {
  if (p === null || p === undefined) return null;
  return { executable: p.executable, script: p.script ?? null, cwd: p.cwd, pid: p.pid };
}

export const AuditViewSchema = z.object({
  id: z.string(),
  at: z.number(),
  actor: z.string(),
  action: z.string(),
  agentClientId: z.string().nullable(),
  variable: z.string().nullable(),
  requestId: z.string().nullable(),
  grantId: z.string().nullable(),
  secretName: z.string().nullable(),
  outcome: z.string(),
  /**
   * For `call.made` events, the call the Link made for the agent (method, host, path without query,
   * status, bytes, duration, redacted…; never a value or a body). Null or absent otherwise.
   */
  call: CallAuditSchema.nullable().optional(),
  /**
   * The verified program the event is about (the asking program for asks, decisions and ends of a
   * request; the receiving program for deliveries and calls). Null when none was identified or for
   * events about no program (secret changes); absent from authorities that predate it.
   */
  program: AuditProgramSchema.nullable().optional(),
});
export type AuditView = z.infer<typeof AuditViewSchema>;

export const AuditPageSchema = z.object({ events: z.array(AuditViewSchema), nextCursor: z.string().nullable() });
export type AuditPage = z.infer<typeof AuditPageSchema>;

/**
 * The person's decision. `scope` is how long it lasts (`process` is the older spelling of
 * `binding: "process"` with no end of its own); `binding` what it binds to (default: the program,
 * or the process for `scope: process`); `mode` and `policy` what it allows (default: read, no limits).
 */
export const ApproveBodySchema = z
  .object({
    scope: ScopeSchema,
    binding: GrantBindingKindSchema.optional(),
    mode: GrantModeSchema.optional(),
    policy: GrantPolicySchema.nullable().optional(),
    secretName: SecretNameSchema.optional(),
  })
  .strict();
export type ApproveBody = z.infer<typeof ApproveBodySchema>;

export const InstanceCreatedSchema = z.object({ instanceId: z.string() });

export const AgentIdentitySchema = z.object({
  instanceId: z.string().min(1).max(256),
  agentClientId: z.string().min(1).max(128),
});

export const AgentResolveBodySchema = AgentIdentitySchema.extend({
  agentName: z.string().max(200).optional(),
  variable: VariableSchema,
  reason: z.string().max(1000).optional(),
  process: PeerProcessSchema.nullable().optional(),
  /**
   * Set when the variable is one of several the agent asked for together: a request created now
   * joins this batch (a reused pending request keeps the batch it has).
   */
  batchId: BatchIdSchema.optional(),
  /**
   * Set when the value is resolved to perform a call for the agent (DESIGN.md section 8): the
   * authority checks the grant's mode, destinations and policy against it on every use.
   */
  use: z.object({ method: CallMethodSchema, url: z.url().max(8192) }).optional(),
  /**
   * False for a requester that never waits for the answer (the Link's pyper-sdk endpoints): a
   * pending request of the same program in the same terminal session is reused by its next run, and
   * it is shown as such (RequestView.requesterWaits). Default true.
   */
  requesterWaits: z.boolean().optional(),
  /**
   * With `use`: when the only grants there are do not allow this destination, create a request
   * (its reason names the method and URL) instead of answering 403 `destination_not_allowed`.
   */
  askBeyondGrant: z.boolean().optional(),
});
export type AgentResolveBody = z.infer<typeof AgentResolveBodySchema>;

export const AgentResolveResultSchema = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("granted"),
    value: z.string(),
    grantId: z.string(),
    expiresAt: z.number().nullable(),
    variable: z.string(),
    /** False for grants that must be checked at the authority on every use (`once`). */
    reusable: z.boolean(),
    /**
     * The grant's terms (mode and destinations, policy). Absent from authorities that predate
     * grant terms: the Link then treats the grant as a read grant without policy.
     */
    terms: GrantTermsSchema.optional(),
  }),
  z.object({ status: z.literal("pending"), requestId: z.string(), expiresAt: z.number() }),
]);
export type AgentResolveResult = z.infer<typeof AgentResolveResultSchema>;

/** Deliveries the Link answered from its cache of live grants, reported for the audit log. */
export const UsageReportSchema = z.object({
  uses: z
    .array(
      z.object({
        grantId: z.string().min(1).max(128),
        at: z.number().int(),
        agentClientId: z.string().min(1).max(128),
        pid: z.number().int().nullable(),
        /** The verified program the value went to (absent from older Links). */
        program: AuditProgramSchema.nullable().optional(),
        /**
         * Present when the use was a call the Link made for the agent: what the audit log keeps of
         * it. With `fromCache: false` the delivery itself was already counted by the authority's
         * resolve; the report then only adds the call's details.
         */
        call: CallAuditSchema.extend({ fromCache: z.boolean() }).optional(),
      }),
    )
    .min(1)
    .max(1000),
});
export type UsageReport = z.infer<typeof UsageReportSchema>;

export const AgentWaitBodySchema = AgentIdentitySchema.extend({
  timeoutMs: z
    .number()
    .int()
    .min(0)
    .max(10 * 60_000),
});
export const AgentWaitResultSchema = z.object({
  status: z.enum(["pending", "approved", "denied", "expired", "requester_gone"]),
});
export type AgentWaitResult = z.infer<typeof AgentWaitResultSchema>;

/** Pushed on the Link API's event stream. */
export const AuthorityEventSchema = z.object({
  type: z.enum(["request.created", "request.decided", "grant.changed", "secret.changed"]),
  userId: z.string(),
  id: z.string().nullable(),
  status: z.string().nullable(),
});
export type AuthorityEvent = z.infer<typeof AuthorityEventSchema>;

/** pyper-sdk's request bodies: one definition, in shared/pyper.ts (also used by the Link's own endpoints). */
export { PyperExchangeSchema, PyperResolveSchema, PyperScopedSchema } from "./pyper.js";

/** OAuth token endpoint answer (RFC 6749 section 5.1) and device authorization answer (RFC 8628 section 3.2). */
export const TokenResponseSchema = z.object({
  access_token: z.string(),
  token_type: z.string(),
  expires_in: z.number(),
  refresh_token: z.string(),
});
export type TokenResponse = z.infer<typeof TokenResponseSchema>;

export const DeviceAuthorizationSchema = z.object({
  device_code: z.string(),
  user_code: z.string(),
  verification_uri: z.string(),
  /** Optional in RFC 8628 section 3.2. */
  verification_uri_complete: z.string().optional(),
  expires_in: z.number(),
  /**
   * Optional in RFC 8628 section 3.2; the client then polls every 5 seconds. Read leniently: a value
   * that is not a positive number (`0`, `"x"`) means that default rather than a failed sign-in.
   */
  interval: z
    .unknown()
    .optional()
    .transform((v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 5)),
});
export type DeviceAuthorization = z.infer<typeof DeviceAuthorizationSchema>;

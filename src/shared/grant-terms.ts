/**
 * What a grant means (DESIGN.md section 5): what it binds to, how long it lasts, what it allows
 * (read the value, or only use it through the Link's calls to named destinations), and the policy
 * limits checked on every use. The window's Approve dialog, the CLI's `approve`, the authority's
 * storage and the Link's checks all speak these schemas, so a grant means the same thing everywhere.
 *
 * The binding vocabulary follows 1Password's CLI (approval per process and per terminal session,
 * 10 minutes idle / 12 hours at most) and adds the program (executable + script + working
 * directory), which is what survives from one run of an agent to the next.
 */
import { z } from "zod";

/**
 * Who may redeem the grant, checked against the program identity the Link read from the OS:
 * - `process`: that one process (pid + start time); ends when it exits.
 * - `session`: any process of the same program in that terminal session (session id + the session
 *   leader's pid and start time); ends when the session leader exits or after the idle limit.
 * - `program`: that program (executable + script + working directory), in any session.
 * - `client`: any program that says it is this agent (client ID) — the old, weakest meaning; only
 *   as an explicit choice, shown with a warning.
 */
export const GrantBindingKindSchema = z.enum(["process", "session", "program", "client"]);
export type GrantBindingKind = z.infer<typeof GrantBindingKindSchema>;

/** The idle and absolute limits of a session-bound grant (1Password CLI: 10 min idle, 12 h at most). */
export const SESSION_IDLE_MS = 10 * 60_000;
export const SESSION_MAX_MS = 12 * 3600_000;

/** How long the grant lasts. `duration` ends `durationMs` after approval. */
export const GrantLifetimeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("once") }),
  z.object({ kind: z.literal("duration"), durationMs: z.number().int().min(1000).max(366 * 24 * 3600 * 1000) }),
  z.object({ kind: z.literal("until_revoked") }),
]);
export type GrantLifetime = z.infer<typeof GrantLifetimeSchema>;

/**
 * A destination rule for "use only" grants: a host (exact, or `*.example.com` for its subdomains),
 * optionally with a method and a path pattern (`*` matches any run of characters), e.g.
 * `{ host: "api.stripe.com", method: "GET", path: "/v1/charges*" }`.
 */
export const DestinationRuleSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .max(253)
      .regex(/^(\*\.)?[a-z0-9.-]+(:\d{1,5})?$/i, "a host name (optionally *.domain, optionally :port)"),
    method: z
      .string()
      .regex(/^[A-Z]{1,16}$/)
      .optional(),
    path: z.string().startsWith("/").max(512).optional(),
  })
  .strict();
export type DestinationRule = z.infer<typeof DestinationRuleSchema>;

/** What the grant allows: reading the value (the SDK's `getSecret`), or only calls made by the Link. */
export const GrantModeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("read") }),
  z.object({ kind: z.literal("use"), destinations: z.array(DestinationRuleSchema).min(1).max(32) }),
]);
export type GrantMode = z.infer<typeof GrantModeSchema>;

/**
 * Limits checked on every use, failing closed (`policy_violation`): allowed weekdays (0 = Sunday)
 * and hours (`fromHour` inclusive to `toHour` exclusive, 0–24) in `timeZone` (IANA), at most
 * `maxUsesPerHour` / `maxUsesPerDay` uses, and an end date (ms since the epoch).
 */
export const GrantPolicySchema = z
  .object({
    timeZone: z.string().min(1).max(64).optional(),
    weekdays: z.array(z.number().int().min(0).max(6)).min(1).max(7).optional(),
    hours: z.object({ fromHour: z.number().int().min(0).max(23), toHour: z.number().int().min(1).max(24) }).optional(),
    maxUsesPerHour: z.number().int().min(1).max(1_000_000).optional(),
    maxUsesPerDay: z.number().int().min(1).max(1_000_000).optional(),
    endsAt: z.number().int().positive().optional(),
  })
  .strict();
export type GrantPolicy = z.infer<typeof GrantPolicySchema>;

/** The terms the person chooses when approving; absent parts take the defaults below. */
export const GrantTermsSchema = z
  .object({
    binding: GrantBindingKindSchema.default("program"),
    lifetime: GrantLifetimeSchema.default({ kind: "duration", durationMs: SESSION_MAX_MS }),
    mode: GrantModeSchema.default({ kind: "read" }),
    policy: GrantPolicySchema.nullable().default(null),
  })
  .strict();
export type GrantTerms = z.infer<typeof GrantTermsSchema>;

/**
 * The Approve dialog's default: this program, for 12 hours. It is the narrowest choice that keeps
 * the approval-fatigue figure (`npm run bench`: one agent program, 3 secrets, 20 runs over a working
 * day) at one approval per secret: a process binding asks again on every run, and a session binding
 * ends after 10 idle minutes between runs.
 */
export const DEFAULT_GRANT_TERMS: GrantTerms = {
  binding: "program",
  lifetime: { kind: "duration", durationMs: SESSION_MAX_MS },
  mode: { kind: "read" },
  policy: null,
};

/** A sentence for what a binding means, as the window and the CLI show it. */
export function describeBinding(kind: GrantBindingKind): string {
  switch (kind) {
    case "process":
      return "while this process runs";
    case "session":
      return "in this terminal session";
    case "program":
      return "this program (executable, script and folder)";
    case "client":
      return "any program that says it is this agent";
  }
}

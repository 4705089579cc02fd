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
  z.object({
    kind: z.literal("duration"),
    durationMs: z
      .number()
      .int()
      .min(1000)
      .max(366 * 24 * 3600 * 1000),
  }),
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

/** The outcome of a check on a grant's terms: allowed, or refused with a stable code and a reason for people. */
export type TermsVerdict =
  { ok: true } | { ok: false; code: "policy_violation" | "destination_not_allowed"; reason: string };

const WEEKDAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** Weekday (0 = Sunday) and hour (0–23) of `at` (ms) in `timeZone` (IANA; the host's zone when absent). */
export function localWeekdayHour(at: number, timeZone: string | undefined): { weekday: number; hour: number } {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    weekday: "short",
    hour: "numeric",
    hourCycle: "h23",
  }).formatToParts(at);
  const weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(
    parts.find((p) => p.type === "weekday")?.value ?? "",
  );
  const hour = Number(parts.find((p) => p.type === "hour")?.value ?? "0") % 24;
  return { weekday, hour };
}

/**
 * Checks a grant's policy limits for one more use at `now` (ms), given how many uses the grant
 * had in the last hour and the last 24 hours. Fails closed: an unknown time zone refuses.
 */
export function checkPolicy(
  policy: GrantPolicy | null,
  use: { now: number; usesLastHour: number; usesLastDay: number },
): TermsVerdict {
  if (policy === null) return { ok: true };
  const refuse = (reason: string): TermsVerdict => ({ ok: false, code: "policy_violation", reason });
  if (policy.endsAt !== undefined && use.now >= policy.endsAt)
    return refuse(`this grant's policy ended on ${new Date(policy.endsAt).toISOString()}`);
  if (policy.weekdays !== undefined || policy.hours !== undefined) {
    let local: { weekday: number; hour: number };
    try {
      local = localWeekdayHour(use.now, policy.timeZone);
    } catch {
      return refuse(`the policy's time zone ${JSON.stringify(policy.timeZone)} is unknown`);
    }
    if (policy.weekdays !== undefined && !policy.weekdays.includes(local.weekday)) {
      return refuse(`allowed only on ${policy.weekdays.map((d) => WEEKDAY_NAMES[d]).join(", ")}`);
    }
    if (policy.hours !== undefined && !(local.hour >= policy.hours.fromHour && local.hour < policy.hours.toHour)) {
      return refuse(
        `allowed only from ${policy.hours.fromHour}:00 to ${policy.hours.toHour}:00${policy.timeZone ? ` (${policy.timeZone})` : ""}`,
      );
    }
  }
  if (policy.maxUsesPerHour !== undefined && use.usesLastHour >= policy.maxUsesPerHour)
    return refuse(`at most ${policy.maxUsesPerHour} uses per hour`);
  if (policy.maxUsesPerDay !== undefined && use.usesLastDay >= policy.maxUsesPerDay)
    return refuse(`at most ${policy.maxUsesPerDay} uses per day`);
  return { ok: true };
}

/** Does `host` (lower case, with `:port` when not the scheme's default) match a rule's host? */
function hostMatches(rule: string, host: string): boolean {
  const pattern = rule.toLowerCase();
  // A wildcard names host names, never an IP address (`*.0.0.1` does not name 127.0.0.1): calls
  // reach this machine or a private network only when the grant names the address itself.
  if (pattern.startsWith("*."))
    return (
      !/^\d+\.\d+\.\d+\.\d+(:\d+)?$/.test(host) && host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1
    );
  return host === pattern;
}

/** Does `path` match a rule's path pattern, where `*` stands for any run of characters? */
function pathMatches(pattern: string, path: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(path);
}

/**
 * The path a path rule is matched against: `url.pathname` (where the URL parser has already
 * resolved `.` and `..` segments, also written `%2e`) with each segment percent-decoded, so
 * `/%61llowed` is `/allowed`. Null when a segment hides a separator (`%2F`, `%5C`: many servers
 * decode them and then resolve `..%2F` as a parent step, so `/allowed/..%2Fecho` reaches `/echo`),
 * decodes to a dot segment (also `..;x`, which Tomcat and Spring read as `..`), still holds a `%`
 * after decoding (`%252e`: a second decoding would make a dot segment; a literal `%` in a path is
 * refused with it), or is not valid percent-encoding: such a path matches no rule.
 */
export function decodedPathForRules(url: URL): string | null {
  const segments = url.pathname.split("/");
  const decoded: string[] = [];
  for (const segment of segments) {
    if (/%(2f|5c)/i.test(segment)) return null;
    let plain: string;
    try {
      plain = decodeURIComponent(segment);
    } catch {
      return null;
    }
    // A dot segment, also with path parameters (`..;x`: Tomcat and Spring read it as `..`), and
    // what another decoding would turn into one (`%252e`: a `%` left after decoding) match no rule.
    const bare = plain.split(";", 1)[0] ?? "";
    if (bare === "." || bare === ".." || plain.includes("/") || plain.includes("\\") || plain.includes("%"))
      return null;
    decoded.push(plain);
  }
  return decoded.join("/");
}

/**
 * May a call with `method` to `url` carry this grant's secret? A read grant allows any call the
 * agent makes with its own copy; a use grant only calls to one of its destinations.
 */
export function destinationAllows(mode: GrantMode, method: string, url: URL): TermsVerdict {
  if (mode.kind === "read") return { ok: true };
  const host = url.host.toLowerCase();
  const path = decodedPathForRules(url);
  for (const rule of mode.destinations) {
    if (!hostMatches(rule.host, host)) continue;
    if (rule.method !== undefined && rule.method !== method.toUpperCase()) continue;
    if (rule.path !== undefined && (path === null || !pathMatches(rule.path, path))) continue;
    return { ok: true };
  }
  if (path === null && mode.destinations.some((r) => r.path !== undefined && hostMatches(r.host, host))) {
    return {
      ok: false,
      code: "destination_not_allowed",
      reason: `${method.toUpperCase()} ${url.origin}${url.pathname} has an encoded slash or backslash (%2F, %5C) or a dot segment in its path, which a path rule cannot vouch for`,
    };
  }
  return {
    ok: false,
    code: "destination_not_allowed",
    reason: `${method.toUpperCase()} ${url.origin}${url.pathname} is not among this grant's destinations (hosts are matched with their port unless it is 443: ${host})`,
  };
}

/**
 * How the window and the CLI's human output say things to a person (issue 15 item 8): times in the
 * person's own time zone (relative when recent, the absolute local date-time alongside), durations in
 * words, audit actions and outcomes as sentences instead of stored codes, request statuses, and
 * validation failures as one sentence naming the field. Machine output (JSON) keeps the codes and
 * epoch milliseconds; only what a person reads goes through here. Pure: no I/O, usable by CLI and
 * renderer (the time zone is the runtime's, i.e. the person's).
 */
import type { AuditView, GrantView, RequestView } from "./authority.js";

/**
 * An epoch-ms instant as a local date and time in the runtime's time zone and locale, e.g.
 * "29 Nov 2026, 23:41" (`locale` undefined = the person's; tests pass one to get a stable text).
 */
export function localDateTime(ms: number, locale?: string): string {
  return new Date(ms).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * How long ago `ms` was, relative to `now` (both epoch ms): "just now" under 5 s, "42 s ago",
 * "3 min ago", "5 h ago"; from 24 hours on, the absolute local date-time instead (a relative
 * "17 d ago" makes a person count). Times in the future (clock skew) read "just now".
 */
export function relativeTime(ms: number, now: number = Date.now(), locale?: string): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return localDateTime(ms, locale);
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

/**
 * A span of milliseconds in words, at most two units and rounded down: 3_600_000 -> "1 hour",
 * 5_400_000 -> "1 hour 30 minutes", 172_800_000 -> "2 days", 90_000 -> "1 minute 30 seconds".
 */
export function durationText(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const parts: Array<[number, string]> = [
    [Math.floor(total / 86_400), "day"],
    [Math.floor((total % 86_400) / 3600), "hour"],
    [Math.floor((total % 3600) / 60), "minute"],
    [total % 60, "second"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return "0 seconds";
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, unit]) => plural(n, unit))
    .join(" ");
}

/** Audit actions as a person says them; an unknown action is shown as its words ("call.made" -> "Call made"). */
const ACTIONS: Record<string, string> = {
  "request.created": "Asked",
  "request.approved": "Approved",
  "request.denied": "Denied",
  "request.expired": "Expired",
  "secret.delivered": "Delivered",
  "call.made": "Used in a call",
  "grant.ended": "Grant ended",
  "user.created": "Account created",
  "instance.registered": "Machine registered",
  "instance.revoked": "Machine signed out",
  "secret.created": "Secret added",
  "secret.updated": "Secret replaced",
  "secret.deleted": "Secret deleted",
};

function codeToWords(code: string): string {
  const words = code.replace(/[._-]+/g, " ").trim();
  return words.length === 0 ? code : words.charAt(0).toUpperCase() + words.slice(1);
}

/** What the wording reads of a grant: its length (timed approvals) and its mode (use-only deliveries). */
export type GrantForWords = Pick<GrantView, "createdAt" | "expiresAt"> & Partial<Pick<GrantView, "mode">>;

/**
 * The action column of an audit event ("request.approved" -> "Approved"). A delivery under a
 * use-only grant (`grant.mode.kind === "use"`) went to Piper Link for a call, not to the agent:
 * "Used in a call".
 */
export function describeAction(action: string, grant?: Partial<Pick<GrantView, "mode">>): string {
  if (action === "secret.delivered" && grant?.mode?.kind === "use") return "Used in a call";
  return ACTIONS[action] ?? codeToWords(action);
}

/** The hosts a use-only grant may send its secret to, in words: "api.example.com", "a.com or b.com", "a.com, b.com or 2 more". */
function hostsInWords(hosts: readonly string[]): string {
  const unique = [...new Set(hosts)];
  if (unique.length <= 2) return unique.join(" or ");
  if (unique.length === 3) return `${unique[0] ?? ""}, ${unique[1] ?? ""} or ${unique[2] ?? ""}`;
  return `${unique.slice(0, 2).join(", ")} or ${unique.length - 2} more`;
}

/** Why a grant ended, as stored in `end_reason` / the `grant.ended` outcome. */
const END_REASONS: Record<string, string> = {
  revoked: "revoked by you",
  expired: "its time ran out",
  used: "used once",
  process_exited: "the process exited",
  secret_deleted: "the secret was deleted",
  signed_out: "the machine signed out",
  "signed out": "the machine signed out",
};

/** A grant's end reason in words ("process_exited" -> "the process exited"). */
export function describeEndReason(reason: string | null): string {
  if (reason === null) return "ended";
  return END_REASONS[reason] ?? codeToWords(reason).toLowerCase();
}

/**
 * How long an approval lasts, in words: "once", "for 1 hour", "until revoked", "while the process
 * runs". The stored scope of a timed grant is only `until`; its length is the grant's
 * `expiresAt - createdAt`, so pass the grant when it is known ("for a while" otherwise).
 */
export function describeApproval(scope: string, grant?: Pick<GrantView, "createdAt" | "expiresAt">): string {
  switch (scope) {
    case "once":
      return "once";
    case "until":
    case "duration":
      return grant !== undefined && grant.expiresAt !== null
        ? `for ${durationText(grant.expiresAt - grant.createdAt)}`
        : "for a limited time";
    case "until_revoked":
      return "until revoked";
    case "process":
      return "while the process runs";
    default:
      return codeToWords(scope).toLowerCase();
  }
}

/**
 * The outcome column of an audit event as a sentence fragment: "approved for 1 hour", "denied",
 * "request made", "value given to the agent", "used in a call to api.example.com", "revoked by
 * you"… `grants` maps grant IDs to grants (for the length of a timed approval, and whether a
 * delivery was for a call under a use-only grant); events whose grant is unknown still read sensibly.
 * A call's host comes from the event's own `call` (the call the Link made); a use-only delivery,
 * which records no host, names the hosts its grant allows.
 */
export function describeOutcome(
  e: Pick<AuditView, "action" | "outcome" | "grantId"> & Partial<Pick<AuditView, "call">>,
  grants?: ReadonlyMap<string, GrantForWords>,
): string {
  const grant = e.grantId === null ? undefined : grants?.get(e.grantId);
  switch (e.action) {
    case "request.approved":
      return `approved ${describeApproval(e.outcome, grant)}`;
    case "request.created":
      // Stored as "pending" at the time; the decision is its own event, so this only says it was asked.
      return e.outcome === "pending" ? "request made" : codeToWords(e.outcome).toLowerCase();
    case "request.expired":
      return "nobody decided in time";
    case "grant.ended":
      return describeEndReason(e.outcome);
    case "call.made":
      if (e.outcome === "ok" && e.call != null) return `used in a call to ${e.call.host}`;
      break;
    case "secret.delivered":
      if (e.outcome === "ok" && grant?.mode?.kind === "use")
        return `used in a call to ${hostsInWords(grant.mode.destinations.map((d) => d.host))}; not given to the agent`;
      break;
  }
  if (e.outcome === "ok") return e.action === "secret.delivered" ? "value given to the agent" : "done";
  return codeToWords(e.outcome).toLowerCase();
}

/**
 * Who did it, from the audit `actor`: "user" -> "You", "system" -> "Piper (automatic)", "link" ->
 * "Piper Link", "agent:<clientId>" -> "Agent <clientId>" (the caller escapes agent-chosen text).
 */
export function describeActor(actor: string): string {
  if (actor === "user") return "You";
  if (actor === "system") return "Piper (automatic)";
  if (actor === "link") return "Piper Link";
  if (actor.startsWith("agent:")) return `Agent ${actor.slice("agent:".length)}`;
  return actor;
}

/** What the CLI and window call a request's state; `requester gone` when its process has exited while it waited. */
export type RequestStatusLabel = "pending" | "approved" | "denied" | "expired" | "requester gone";

/**
 * The status of a request as a person reads it. A pending request whose requesting process is known
 * to have exited (`processAlive` false) can never be delivered: it reads "requester gone".
 */
export function requestStatusLabel(
  r: Pick<RequestView, "status">,
  processAlive: boolean | null = null,
): RequestStatusLabel {
  if (r.status === "requester_gone" || (r.status === "pending" && processAlive === false)) return "requester gone";
  return r.status;
}

/** Field names of control and CLI parameters in words. */
const FIELDS: Record<string, string> = {
  limit: "the number of events",
  before: "the page cursor",
  agent: "the agent",
  variable: "the variable",
  requestId: "the request",
  grantId: "the grant",
  name: "the name",
  value: "the value",
  secretName: "the secret name",
  scope: "how long",
  durationMs: "the duration",
  status: "the status",
  timeoutMs: "the wait time",
  instanceId: "the instance ID",
};

/** The part of a zod issue this module reads (zod 4's `$ZodIssue` fits). */
export interface ValidationIssue {
  path: ReadonlyArray<PropertyKey>;
  message: string;
  code?: string;
}

/**
 * One sentence for failed validation of what a person (or the window) sent, naming the field in
 * words and what was wrong, without zod's jargon ("Invalid input: expected number, received null"
 * becomes "the number of events is missing or not a number"). `what` names the action, e.g. "list
 * activity". At most three issues are named.
 */
export function describeValidation(what: string, issues: readonly ValidationIssue[]): string {
  const parts = issues.slice(0, 3).map((i) => {
    const key = [...i.path].reverse().find((p): p is string => typeof p === "string");
    const field = key === undefined ? "the input" : (FIELDS[key] ?? `“${key}”`);
    const m = /expected (\w+), received (\w+)/.exec(i.message);
    if (m !== null)
      return m[2] === "undefined" || m[2] === "null" || m[2] === "NaN"
        ? `${field} is missing or not a ${m[1] ?? "value"}`
        : `${field} must be a ${m[1] ?? "value"}`;
    if (i.code === "unrecognized_keys")
      return i.message.replace(/^Unrecognized keys?:\s*/i, "these fields are not known: ");
    // A schema's own predicate ("may contain only …", "can be at most …") continues the field's name.
    if (/^(may|must|can|cannot)\b/.test(i.message)) return `${field} ${i.message}`;
    return `${field}: ${i.message
      .replace(/^Invalid input:?\s*/i, "")
      .replace(/^Too small: expected number to be >=?(\d+)$/, "must be at least $1")
      .replace(/^Too big: expected number to be <=?(\d+)$/, "must be at most $1")}`;
  });
  return `Piper Link could not ${what}: ${parts.join("; ")}.`;
}

/** "listActivity" -> "list activity": a control method named in a sentence. */
export function methodWords(method: string): string {
  return method.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

/**
 * What the person must know about the program that asks before approving, as sentences, most
 * important first: it changed since an earlier approval (content, or what it loads), its connection
 * is shared by several processes, it cannot be recognised again (why), and what else it loads.
 * Empty for a plain program. `p` is the request's process (RequestView.process).
 */
export function programNotes(
  p: Pick<NonNullable<RequestView["process"]>, "changedSinceApproval" | "sharedWith" | "unverifiable" | "loads">,
): string[] {
  const notes: string[] = [];
  if (p.changedSinceApproval === true)
    notes.push("This program changed since you approved it: its content, or what it loads, is not what you approved.");
  const shared = p.sharedWith ?? [];
  if (shared.length > 0)
    notes.push(
      `Its connection is shared with ${shared.map((r) => `pid ${r.pid}`).join(", ")}: Piper Link cannot tell which program asks, so only "any program" can be approved.`,
    );
  if ((p.unverifiable ?? null) !== null)
    notes.push(`Not verifiable: ${p.unverifiable ?? ""}. Approve it once or while this process runs.`);
  const loads = p.loads ?? [];
  if (loads.length > 0) notes.push(`It also loads: ${loads.join(" ")}`);
  return notes;
}

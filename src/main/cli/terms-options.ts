/**
 * The CLI's words for grant terms (issue 14 items 3 and 4): parsers for `--hours 9-17`,
 * `--weekdays mon-fri`, `--tz Europe/Berlin`, `--max-per-hour N`, `--ends 2026-12-31`, `--host` and
 * `--rule 'GET /v1/charges*'`, and the assembly of a mode and a policy from them. Every value is
 * checked with the shared schemas (src/shared/grant-terms.ts), so the CLI refuses (exit 2, a
 * sentence) exactly what the authority would refuse, before anything is sent.
 */
import { InvalidArgumentError } from "commander";
import { SecretHostsSchema } from "../../shared/authority.js";
import {
  DestinationRuleSchema,
  GrantModeSchema,
  GrantPolicySchema,
  type DestinationRule,
  type GrantMode,
  type GrantPolicy,
} from "../../shared/grant-terms.js";
import { LinkError } from "../../shared/errors.js";
import { endOfDay } from "../../shared/grant-terms-text.js";

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/** `--hours 9-17`: from 9:00 (inclusive) to 17:00 (exclusive), whole hours 0–24. */
export function parseHours(value: string): NonNullable<GrantPolicy["hours"]> {
  const m = /^(\d{1,2})(?::00)?-(\d{1,2})(?::00)?$/.exec(value.trim());
  const hours = m ? { fromHour: Number(m[1]), toHour: Number(m[2]) } : null;
  if (hours === null || !GrantPolicySchema.shape.hours.safeParse(hours).success || hours.toHour <= hours.fromHour) {
    throw new InvalidArgumentError("Use whole hours FROM-TO with FROM < TO, e.g. 9-17 (9:00 to 17:00).");
  }
  return hours;
}

function dayIndex(name: string): number {
  const i = DAY_NAMES.indexOf(name.slice(0, 3).toLowerCase());
  if (i < 0 || name.length < 3)
    throw new InvalidArgumentError("Use weekday names or ranges, e.g. mon-fri or mon,wed,fri.");
  return i;
}

/** `--weekdays mon-fri` or `mon,wed,fri` or `fri-mon` (wraps over the weekend) -> 0 = Sunday … 6. */
export function parseWeekdays(value: string): number[] {
  const days = new Set<number>();
  for (const part of value
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0)) {
    const [from, to, extra] = part.split("-");
    if (from === undefined || extra !== undefined)
      throw new InvalidArgumentError("Use weekday names or ranges, e.g. mon-fri or mon,wed,fri.");
    const start = dayIndex(from);
    const end = to === undefined ? start : dayIndex(to);
    for (let d = start; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === end) break;
    }
  }
  if (days.size === 0) throw new InvalidArgumentError("Use weekday names or ranges, e.g. mon-fri or mon,wed,fri.");
  return [...days].sort((a, b) => a - b);
}

/** `--tz Europe/Berlin`: an IANA time zone this runtime knows. */
export function parseTimeZone(value: string): string {
  const zone = value.trim();
  try {
    if (zone.length === 0 || !GrantPolicySchema.shape.timeZone.safeParse(zone).success) throw new RangeError(zone);
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw new InvalidArgumentError("Use an IANA time zone such as Europe/Berlin or America/New_York.");
  }
  return zone;
}

/** `--max-per-hour N` / `--max-per-day N`: a whole number from 1 to 1,000,000. */
export function parseUseCount(value: string): number {
  const n = /^\d{1,7}$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!GrantPolicySchema.shape.maxUsesPerDay.safeParse(n).success || Number.isNaN(n))
    throw new InvalidArgumentError("Use a whole number from 1 to 1000000.");
  return n;
}

/** `--ends 2026-12-31`: a calendar date; the policy ends when that day ends (see `endOfDay`). */
export function parseDate(value: string): { year: number; month: number; day: number } {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim());
  const date = m ? { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) } : null;
  const check = date === null ? null : new Date(Date.UTC(date.year, date.month - 1, date.day));
  if (date === null || check === null || check.getUTCMonth() !== date.month - 1 || check.getUTCDate() !== date.day)
    throw new InvalidArgumentError("Use a date as YYYY-MM-DD, e.g. 2026-12-31.");
  return date;
}

/** `--host api.example.com`: a host rule as in a grant's destinations. */
export function parseHost(value: string, previous: string[] = []): string[] {
  const host = value.trim().toLowerCase();
  if (!DestinationRuleSchema.shape.host.safeParse(host).success)
    throw new InvalidArgumentError(
      `${JSON.stringify(value)} is not a host name; use e.g. api.example.com, *.example.com or 127.0.0.1:8443.`,
    );
  return [...previous, host];
}

/** `--rule 'GET /v1/charges*'`: a method (optional) and a path pattern, applied to every `--host`. */
export function parseRule(
  value: string,
  previous: Array<{ method?: string; path: string }> = [],
): Array<{ method?: string; path: string }> {
  const m = /^(?:([A-Za-z]{1,16})\s+)?(\/\S*)$/.exec(value.trim());
  const method = m?.[1]?.toUpperCase();
  const path = m?.[2];
  if (
    path === undefined ||
    !DestinationRuleSchema.safeParse({ host: "example.com", path, ...(method ? { method } : {}) }).success
  ) {
    throw new InvalidArgumentError("Use a rule as 'METHOD /path', e.g. 'GET /v1/charges*' (* matches anything).");
  }
  return [...previous, method ? { method, path } : { path }];
}

/** `--method GET`: an HTTP method a use-only grant allows on every `--host` (repeat for more). */
export function parseMethod(value: string, previous: string[] = []): string[] {
  const method = value.trim().toUpperCase();
  if (!DestinationRuleSchema.shape.method.safeParse(method).success)
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not an HTTP method; use e.g. GET or POST.`);
  return previous.includes(method) ? previous : [...previous, method];
}

/** The flags that make up a policy; absent ones are no limit. */
export interface PolicyFlags {
  hours?: NonNullable<GrantPolicy["hours"]>;
  weekdays?: number[];
  tz?: string;
  maxPerHour?: number;
  maxPerDay?: number;
  ends?: { year: number; month: number; day: number };
}

/**
 * The policy the flags describe, or null when none was given. The time zone defaults to this
 * machine's (Intl), since "9-17" means the person's working hours. Throws LinkError `bad_request`
 * (exit 2) when `--tz` comes without hours or weekdays, or the end date has passed.
 */
export function policyFromFlags(o: PolicyFlags, now: number = Date.now()): GrantPolicy | null {
  const timed = o.hours !== undefined || o.weekdays !== undefined;
  if (o.tz !== undefined && !timed && o.ends === undefined)
    throw new LinkError("bad_request", "--tz applies to --hours, --weekdays and --ends; give one of them too.");
  if (!timed && o.maxPerHour === undefined && o.maxPerDay === undefined && o.ends === undefined) return null;
  const timeZone = o.tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const policy: GrantPolicy = {
    ...(timed || o.ends !== undefined ? { timeZone } : {}),
    ...(o.weekdays !== undefined ? { weekdays: o.weekdays } : {}),
    ...(o.hours !== undefined ? { hours: o.hours } : {}),
    ...(o.maxPerHour !== undefined ? { maxUsesPerHour: o.maxPerHour } : {}),
    ...(o.maxPerDay !== undefined ? { maxUsesPerDay: o.maxPerDay } : {}),
    ...(o.ends !== undefined ? { endsAt: endOfDay(o.ends, timeZone) } : {}),
  };
  if (policy.endsAt !== undefined && policy.endsAt <= now)
    throw new LinkError("bad_request", "The end date has already passed.");
  return GrantPolicySchema.parse(policy);
}

/**
 * The mode the flags describe: read (no `--use-only`), or use-only with every `--host` times every
 * `--rule` (when given) times every `--method` (when given; a rule's own method must be one of
 * them). `--method GET` alone is the read-only route to a host that also accepts writes: a value
 * stored there by a call cannot then be read back in pieces no redactor sees. Throws LinkError
 * `bad_request` (exit 2) for hosts, rules or methods without `--use-only`, `--use-only` without a
 * host, a rule whose method is not among `--method`, or more than 32 destinations.
 */
export function modeFromFlags(o: {
  useOnly?: boolean;
  host?: string[];
  rule?: Array<{ method?: string; path: string }>;
  method?: string[];
}): GrantMode {
  const hosts = o.host ?? [];
  const rules = o.rule ?? [];
  const methods = o.method ?? [];
  if (o.useOnly !== true) {
    if (hosts.length > 0 || rules.length > 0 || methods.length > 0)
      throw new LinkError("bad_request", "--host, --rule and --method describe a use-only grant; add --use-only.");
    return { kind: "read" };
  }
  if (hosts.length === 0)
    throw new LinkError("bad_request", "--use-only needs at least one --host the secret may be sent to.");
  const shapes: Array<{ method?: string; path?: string }> = (rules.length === 0 ? [{}] : rules).flatMap(
    (r: { method?: string; path?: string }) => {
      if (methods.length === 0) return [r];
      if (r.method === undefined) return methods.map((method) => ({ ...r, method }));
      if (!methods.includes(r.method))
        throw new LinkError(
          "bad_request",
          `The rule for ${r.method} ${r.path ?? ""} names a method that --method does not allow (${methods.join(", ")}).`,
        );
      return [r];
    },
  );
  const destinations: DestinationRule[] = hosts.flatMap((host) => shapes.map((r) => ({ host, ...r })));
  const mode = GrantModeSchema.safeParse({ kind: "use", destinations });
  if (!mode.success)
    throw new LinkError("bad_request", "At most 32 destinations (hosts times rules times methods) per grant.");
  return mode.data;
}

/** `--host` values as a secret's host list (1 to 32), or LinkError `bad_request`. */
export function secretHostsFromFlags(hosts: string[]): string[] {
  const parsed = SecretHostsSchema.safeParse(hosts);
  if (!parsed.success) throw new LinkError("bad_request", "Give 1 to 32 --host values.");
  return parsed.data;
}

/**
 * Grant terms in words, as the window and the CLI show them: a grant's mode ("read the value" or
 * "use only via Piper Link: …") and its policy limits ("9:00–17:00 mon,tue (Europe/Berlin), at most
 * 5/hour"), and the end of a calendar day in a time zone (for "ends on"). Pure text: path rules are free text the person typed, so callers show the result
 * through `displayText` like any other stored words.
 */
import type { GrantMode, GrantPolicy } from "./grant-terms.js";

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/** How far `timeZone` is ahead of UTC at `at` (ms), from Intl's wall-clock parts. */
function zoneOffset(at: number, timeZone: string | undefined): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
  }).formatToParts(at);
  const get = (t: string): number => Number(parts.find((p) => p.type === t)?.value ?? "0");
  return (
    Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second")) -
    Math.floor(at / 1000) * 1000
  );
}

/**
 * The end of `date` in `timeZone` (the machine's zone when absent): midnight at the start of the
 * next day there, in ms since the epoch. Corrected twice so a DST change that day lands right.
 */
export function endOfDay(date: { year: number; month: number; day: number }, timeZone: string | undefined): number {
  const wall = Date.UTC(date.year, date.month - 1, date.day + 1);
  let at = wall - zoneOffset(wall, timeZone);
  at = wall - zoneOffset(at, timeZone);
  return at;
}

/** A policy in words for `grants` and `approve` output: "9:00–17:00 Mon–Fri (Europe/Berlin), ≤ 5/hour". */
export function describePolicy(p: GrantPolicy | null | undefined): string {
  if (p === null || p === undefined) return "no limits";
  const parts: string[] = [];
  if (p.hours !== undefined) parts.push(`${p.hours.fromHour}:00–${p.hours.toHour}:00`);
  if (p.weekdays !== undefined) parts.push(p.weekdays.map((d) => DAY_NAMES[d]).join(","));
  if ((p.hours !== undefined || p.weekdays !== undefined) && p.timeZone !== undefined) parts.push(`(${p.timeZone})`);
  if (p.maxUsesPerHour !== undefined) parts.push(`at most ${p.maxUsesPerHour}/hour`);
  if (p.maxUsesPerDay !== undefined) parts.push(`at most ${p.maxUsesPerDay}/day`);
  if (p.endsAt !== undefined) parts.push(`ends ${new Date(p.endsAt).toISOString()}`);
  return parts.length === 0 ? "no limits" : parts.join(" ");
}

/** A mode in words: "read" or "use only: GET api.stripe.com/v1/charges*, api.openai.com". */
export function describeMode(m: GrantMode | undefined): string {
  if (m === undefined || m.kind === "read") return "read the value";
  return `use only via Piper Link: ${m.destinations.map((d) => `${d.method ? `${d.method} ` : ""}${d.host}${d.path ?? ""}`).join(", ")}`;
}

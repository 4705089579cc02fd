/**
 * Grant terms in words, as the window and the CLI show them: a grant's mode ("read the value" or
 * "use only via Piper Link: …") and its policy limits ("9:00–17:00 mon,tue (Europe/Berlin), at most
 * 5/hour"). Pure text: path rules are free text the person typed, so callers show the result
 * through `displayText` like any other stored words.
 */
import type { GrantMode, GrantPolicy } from "./grant-terms.js";

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

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

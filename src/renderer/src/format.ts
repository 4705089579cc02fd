/** How times and scopes read in the window. */
import type { GrantView } from "../../shared/authority.js";
import { localDateTime } from "../../shared/wording.js";

export function inTime(ms: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.round((ms - now) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d`;
}

/** The absolute local date-time, in the person's time zone (tooltips). */
export function dateTime(ms: number): string {
  return localDateTime(ms);
}

export function describeScope(g: GrantView, now: number = Date.now()): string {
  switch (g.scope) {
    case "once":
      return "Once";
    case "duration":
      return g.expiresAt === null
        ? "Until a time"
        : g.expiresAt > now
          ? `For ${inTime(g.expiresAt, now)} more`
          : "Expired";
    case "until_revoked":
      return "Until revoked";
    case "process":
      return g.process === null ? "While the process runs" : `While pid ${g.process.pid} runs`;
  }
}

/** The last part of a path (the executable's name). */
export function baseName(p: string | null): string {
  if (p === null) return "unknown program";
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] ?? p;
}

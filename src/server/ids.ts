/** Identifiers: a type prefix and 16 random bytes; audit ids also sort by time. */
import { randomBytes } from "node:crypto";

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(16).toString("base64url")}`;
}

/** Time-ordered: a fixed-width base-36 timestamp, then randomness, so `ORDER BY id` is chronological. */
export function newEventId(at: number): string {
  return `ev_${at.toString(36).padStart(10, "0")}${randomBytes(6).toString("hex")}`;
}

export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}

/**
 * What every part of the authority service shares: the database, the data keys, the event bus and
 * the clock, plus the row types and the parsers for the JSON the rows keep. Each part is a small
 * factory over these (DESIGN.md section 5); `createService` composes them.
 */
import type { Kysely, Selectable } from "kysely";
import { z } from "zod";
import { PeerProcessSchema, type PeerProcess } from "../../shared/process.js";
import type { DataKeys, TokenHasher } from "../crypto.js";
import type { AgentsTable, Database, GrantsTable, RequestsTable } from "../db.js";
import type { EventBus } from "../events.js";
import type { RowMacs } from "./row-macs.js";

export interface ServiceDeps {
  db: Kysely<Database>;
  keys: DataKeys;
  bus: EventBus;
  /** Epoch milliseconds; injected so tests drive expiry with a fake clock. */
  now: () => number;
  /** Row MACs under the data key: rows without a valid one are treated as absent (row-macs.ts). */
  macs: RowMacs;
  /** Keyed token hashes (crypto.ts). */
  tokens: TokenHasher;
}

export type AgentRow = Selectable<AgentsTable>;
export type GrantRow = Selectable<GrantsTable>;
export type RequestRow = Selectable<RequestsTable>;

/**
 * A JSON column read through its shared schema: null when absent, or when a row written by an older
 * or newer version no longer parses (callers then apply their safe default instead of trusting it).
 */
export function parseStored<T>(json: string | null, schema: z.ZodType<T>): T | null {
  if (json === null) return null;
  try {
    const r = schema.safeParse(JSON.parse(json));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** The program identity a request row keeps as JSON ("no identity" when it does not parse). */
export function parseStoredProcess(json: string | null): PeerProcess | null {
  return parseStored(json, PeerProcessSchema);
}

const GrantIdList = z.array(z.string());

/** The grant ids a pyper scoped token covers (stored as a JSON array); unreadable rows cover none. */
export function parseGrantIds(json: string): string[] {
  try {
    const r = GrantIdList.safeParse(JSON.parse(json));
    return r.success ? r.data : [];
  } catch {
    return [];
  }
}

/**
 * The audit log: append-only events per user (never a secret value), listed newest first with a
 * cursor. Event ids sort by time (ids.ts), so paging is `id < cursor`, one query per page.
 *
 * Calls the Link made for agents (`call.made`, DESIGN.md section 8) keep what a call is — method,
 * host, path without query, status, bytes, duration, redacted, error, program — as JSON in the
 * row's `detail` (`{"host":…,"call":{…}}`, written by `callDetail` only), so no migration is needed;
 * the host filter matches the exact `"host":"…"` text of that JSON, which SQLite and PostgreSQL
 * both do with LIKE. Nothing else writes JSON there.
 */
import { sql } from "kysely";
import { z } from "zod";
import { AuditProgramSchema, type AuditPage, type AuditProgram } from "../../shared/authority.js";
import { CallAuditSchema, type CallAudit } from "../../shared/calls.js";
import { normalizeVariable } from "../../shared/protocol.js";
import { newEventId } from "../ids.js";
import type { ServiceDeps } from "./deps.js";

export interface AuditInput {
  userId: string;
  actor: string;
  action: string;
  outcome: string;
  agentClientId?: string | null;
  variable?: string | null;
  requestId?: string | null;
  grantId?: string | null;
  secretName?: string | null;
  detail?: string | null;
  /** The verified program the event is about (the asking or receiving program); null or absent for none. */
  program?: AuditProgram | null;
}

export interface AuditQuery {
  /** Page size, 1..500 (the HTTP layer bounds it). */
  limit: number;
  /** Cursor: the last id of the previous page. */
  before?: string | undefined;
  agent?: string | undefined;
  /** Compared after normalization (DESIGN.md section 4), like every variable name. */
  variable?: string | undefined;
  /** The secret's name, exactly as stored. */
  secret?: string | undefined;
  /** Only calls to this host (`host` or `host:port`, compared lower-case), see the module comment. */
  host?: string | undefined;
}

const CallDetailSchema = z.object({ host: z.string(), call: CallAuditSchema });

/** What `call.made` rows keep in `detail`: the host first (the filter's anchor), then the call. */
export function callDetail(call: CallAudit): string {
  return JSON.stringify({ host: call.host.toLowerCase(), call });
}

/** The call of a `call.made` row's detail; null for every other row (free text or older shapes). */
function callOf(detail: string | null): CallAudit | null {
  if (detail === null || !detail.startsWith("{")) return null;
  try {
    const parsed = CallDetailSchema.safeParse(JSON.parse(detail));
    return parsed.success ? parsed.data.call : null;
  } catch {
    return null;
  }
}

/** A row's program (JSON); null for none or a shape this version cannot read. */
function programOf(json: string | null): AuditProgram | null {
  if (json === null) return null;
  try {
    const parsed = AuditProgramSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** `text` with LIKE's wildcards and its escape character escaped (ESCAPE '!'). */
function likeLiteral(text: string): string {
  return text.replace(/[!%_]/g, (c) => `!${c}`);
}

export type AuditLog = ReturnType<typeof createAuditLog>;

/** The audit part of the service. */
export function createAuditLog({ db, now }: ServiceDeps) {
  return {
    /** Appends one event at the current time. */
    record: async (e: AuditInput): Promise<void> => {
      const at = now();
      await db
        .insertInto("audit_events")
        .values({
          id: newEventId(at),
          user_id: e.userId,
          at,
          actor: e.actor,
          action: e.action,
          outcome: e.outcome,
          agent_client_id: e.agentClientId ?? null,
          variable: e.variable ?? null,
          request_id: e.requestId ?? null,
          grant_id: e.grantId ?? null,
          secret_name: e.secretName ?? null,
          detail: e.detail ?? null,
          program: e.program === undefined || e.program === null ? null : JSON.stringify(e.program),
        })
        .execute();
    },

    /** One page of the user's events, newest first; `nextCursor` is null on the last page. */
    list: async (userId: string, opts: AuditQuery): Promise<AuditPage> => {
      let q = db.selectFrom("audit_events").selectAll().where("user_id", "=", userId);
      if (opts.before !== undefined) q = q.where("id", "<", opts.before);
      if (opts.agent !== undefined) q = q.where("agent_client_id", "=", opts.agent);
      if (opts.variable !== undefined) q = q.where("variable", "=", normalizeVariable(opts.variable));
      if (opts.secret !== undefined) q = q.where("secret_name", "=", opts.secret);
      if (opts.host !== undefined) {
        const pattern = `%${likeLiteral(`"host":${JSON.stringify(opts.host.toLowerCase())}`)}%`;
        q = q.where("action", "=", "call.made").where(sql<boolean>`detail like ${pattern} escape '!'`);
      }
      // One row more than asked tells whether another page exists.
      const rows = await q
        .orderBy("id", "desc")
        .limit(opts.limit + 1)
        .execute();
      const page = rows.slice(0, opts.limit);
      return {
        events: page.map((r) => ({
          id: r.id,
          at: r.at,
          actor: r.actor,
          action: r.action,
          agentClientId: r.agent_client_id,
          variable: r.variable,
          requestId: r.request_id,
          grantId: r.grant_id,
          secretName: r.secret_name,
          outcome: r.outcome,
          call: r.action === "call.made" ? callOf(r.detail) : null,
          program: programOf(r.program),
        })),
        nextCursor: rows.length > opts.limit ? (page[page.length - 1]?.id ?? null) : null,
      };
    },
  };
}

/**
 * The audit log: append-only events per user (never a secret value), listed newest first with a
 * cursor. Event ids sort by time (ids.ts), so paging is `id < cursor`, one query per page.
 */
import type { AuditPage } from "../../shared/authority.js";
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
}

export interface AuditQuery {
  /** Page size, 1..500 (the HTTP layer bounds it). */
  limit: number;
  /** Cursor: the last id of the previous page. */
  before?: string | undefined;
  agent?: string | undefined;
  /** Compared after normalization (DESIGN.md section 4), like every variable name. */
  variable?: string | undefined;
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
        })
        .execute();
    },

    /** One page of the user's events, newest first; `nextCursor` is null on the last page. */
    list: async (userId: string, opts: AuditQuery): Promise<AuditPage> => {
      let q = db.selectFrom("audit_events").selectAll().where("user_id", "=", userId);
      if (opts.before !== undefined) q = q.where("id", "<", opts.before);
      if (opts.agent !== undefined) q = q.where("agent_client_id", "=", opts.agent);
      if (opts.variable !== undefined) q = q.where("variable", "=", normalizeVariable(opts.variable));
      // One row more than asked tells whether another page exists.
      const rows = await q.orderBy("id", "desc").limit(opts.limit + 1).execute();
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
        })),
        nextCursor: rows.length > opts.limit ? (page[page.length - 1]?.id ?? null) : null,
      };
    },
  };
}

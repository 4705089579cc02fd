/** The audit log, newest first: paged, filterable by agent, variable, secret and called host, live. Never values. */
import { History, Search } from "lucide-react";
import { useId, useState } from "react";
import type { AuditView } from "../../../shared/authority.js";
import type { CallAudit } from "../../../shared/calls.js";
import { displayOptional, displayText } from "../../../shared/display.js";
import { describeAction, describeActor, describeOutcome } from "../../../shared/wording.js";
import { Button, EmptyState, ErrorBanner, Field, Loading, PageHeader, TableHead, TableRegion, Time, ui } from "../components/ui.js";
import { useNow } from "../hooks.js";
import { useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import s from "./screens.module.css";

const PAGE = 50;

type Filter = { agent?: string; variable?: string; secret?: string; host?: string };

/** The status, size and time of a call the Link made; the error code when it had no answer. */
function callAnswer(c: CallAudit): string {
  const status = c.status === null ? (c.error ?? "no answer") : `${c.status}${c.error ? ` ${c.error}` : ""}`;
  return `${status} · ${c.bytes} B · ${Math.round(c.durationMs)} ms${c.redacted ? " · redacted" : ""}`;
}

export function ActivityScreen() {
  const api = useLinkApi();
  const id = useId();
  const now = useNow(15_000);
  const [agent, setAgent] = useState("");
  const [variable, setVariable] = useState("");
  const [secret, setSecret] = useState("");
  const [host, setHost] = useState("");
  const [filter, setFilter] = useState<Filter>({});
  const [older, setOlder] = useState<AuditView[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const action = useLinkAction();
  // A timed approval reads "approved for 1 hour": its length is its grant's (expiresAt - createdAt).
  const grants = useLinkData((a) => a.listGrants({ all: true }), (e) => e.kind === "authority" && e.event.type === "grant.changed", []);
  const grantsById = new Map((grants.data ?? []).map((g) => [g.id, g]));
  // The newest page follows every change live; older pages are fetched on request.
  const first = useLinkData(
    async (a) => {
      const page = await a.listActivity({ limit: PAGE, ...filter });
      setOlder([]);
      setCursor(page.nextCursor);
      return page;
    },
    (e) => e.kind === "authority",
    [filter],
  );

  async function loadOlder(): Promise<void> {
    if (cursor === null || cursor === undefined) return;
    await action.run("older", async () => {
      const page = await api.listActivity({ limit: PAGE, before: cursor, ...filter });
      setOlder((o) => [...o, ...page.events]);
      setCursor(page.nextCursor);
    });
  }

  const events = [...(first.data?.events ?? []), ...older];
  return (
    <section>
      <PageHeader title="Activity" subtitle="Every request, decision, delivery and change, newest first. Secret values are never logged." />
      <form
        className={s.toolbar}
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({
            ...(agent.trim() ? { agent: agent.trim() } : {}),
            ...(variable.trim() ? { variable: variable.trim() } : {}),
            ...(secret.trim() ? { secret: secret.trim() } : {}),
            ...(host.trim() ? { host: host.trim() } : {}),
          });
        }}
      >
        <Field label="Agent client ID" id={`${id}-agent`}>
          <input id={`${id}-agent`} className={ui.input} value={agent} onChange={(e) => setAgent(e.target.value)} placeholder="any agent" spellCheck={false} />
        </Field>
        <Field label="Variable" id={`${id}-variable`}>
          <input id={`${id}-variable`} className={ui.input} value={variable} onChange={(e) => setVariable(e.target.value)} placeholder="any variable" spellCheck={false} />
        </Field>
        <Field label="Secret" id={`${id}-secret`}>
          <input id={`${id}-secret`} className={ui.input} value={secret} onChange={(e) => setSecret(e.target.value)} placeholder="any secret" spellCheck={false} />
        </Field>
        <Field label="Called host" id={`${id}-host`}>
          <input id={`${id}-host`} className={ui.input} value={host} onChange={(e) => setHost(e.target.value)} placeholder="any host" spellCheck={false} />
        </Field>
        <Button type="submit" icon={Search}>
          Filter
        </Button>
      </form>
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      {first.error ? <ErrorBanner error={first.error} /> : null}
      {first.data === null && first.loading ? (
        <Loading what="activity" />
      ) : events.length === 0 ? (
        <EmptyState icon={History} title="No activity yet">
          <p>{Object.keys(filter).length > 0 ? "Nothing matches this filter." : "Requests, approvals and deliveries are recorded here as they happen."}</p>
        </EmptyState>
      ) : (
        <>
          <TableRegion label="Activity table">
            <table className={ui.table} aria-label="Activity">
              <TableHead columns={["When", "What", "Agent", "Variable", "Secret", "By", "Outcome", "Call", "Answer"]} />
              <tbody>
                {events.map((e) => (
                  <tr key={e.id}>
                    <td>
                      <Time ms={e.at} now={now} />
                    </td>
                    <td>{describeAction(e.action, e.grantId === null ? undefined : grantsById.get(e.grantId))}</td>
                    <td className={ui.mono}>{displayOptional(e.agentClientId, 80) ?? "—"}</td>
                    <td className={ui.mono}>{displayOptional(e.variable?.toUpperCase()) ?? "—"}</td>
                    <td className={ui.mono}>{displayOptional(e.secretName) ?? "—"}</td>
                    {/* An agent acting on its own request is "the agent"; its ID is in the Agent column already. */}
                    <td className={ui.muted}>{e.agentClientId !== null && e.actor === `agent:${e.agentClientId}` ? "The agent" : displayText(describeActor(e.actor), 80)}</td>
                    <td className={ui.wrapCell}>{describeOutcome(e, grantsById)}</td>
                    <td className={ui.mono}>{e.call ? `${e.call.method} ${displayText(e.call.host, 300)}${displayText(e.call.path, 300)}` : "—"}</td>
                    <td>{e.call ? callAnswer(e.call) : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableRegion>
          {cursor !== null && cursor !== undefined ? (
            <div className={s.more}>
              <Button onClick={() => void loadOlder()} busy={action.busy === "older"}>
                Load older
              </Button>
            </div>
          ) : null}
        </>
      )}
    </section>
  );
}

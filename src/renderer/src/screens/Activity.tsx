/** The audit log, newest first: paged, filterable by agent, variable, secret and called host, live. Never values. */
import { History, Search } from "lucide-react";
import { useId, useState } from "react";
import type { AuditProgram, AuditView } from "../../../shared/authority.js";
import type { CallAudit } from "../../../shared/calls.js";
import { displayOptional, displayText } from "../../../shared/display.js";
import { describeAction, describeActor, describeOutcome } from "../../../shared/wording.js";
import {
  Breakable,
  Button,
  EmptyState,
  ErrorBanner,
  Field,
  Loading,
  PageHeader,
  TableHead,
  TableRegion,
  Time,
  ui,
} from "../components/ui.js";
import { baseName } from "../format.js";
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

/** "You" → "you" for "by you"; names of programs and agents are left as they are. */
function lowerFirst(text: string): string {
  return text === "You" || text === "The agent" ? text.toLowerCase() : text;
}

/**
 * The verified program an event is about, as the Link read it from the system (not the client ID
 * the agent chose): executable and script by name, their full paths and the folder below. Two
 * programs using one client ID read differently here.
 */
function ProgramCell({ program }: { program: AuditProgram | null }) {
  if (program === null) return <span className={ui.muted}>—</span>;
  const paths = [program.executable, program.script].filter((p): p is string => p !== null && p !== "[inline]");
  const name = [
    program.executable === null ? "unknown program" : baseName(program.executable),
    program.script === null ? null : program.script === "[inline]" ? "inline code" : baseName(program.script),
  ]
    .filter((n) => n !== null)
    .join(" ");
  return (
    <div className={s.programCell}>
      <strong>{displayText(name, 120)}</strong>
      {program.pid !== null ? (
        <span className={`${ui.muted ?? ""} ${s.nowrap ?? ""}`}> · pid {program.pid}</span>
      ) : null}
      {paths.map((p) => (
        <div key={p} className={`${ui.mono ?? ""} ${ui.muted ?? ""}`}>
          <Breakable text={displayText(p, 300)} />
        </div>
      ))}
      {program.cwd !== null ? (
        <div className={`${ui.mono ?? ""} ${ui.muted ?? ""}`}>
          in <Breakable text={displayText(program.cwd, 300)} />
        </div>
      ) : null}
    </div>
  );
}

/** The variable asked for and, when it differs, the secret that answered it ("→ WORK_KEY"). */
function SecretCell({ variable, secretName }: { variable: string | null; secretName: string | null }) {
  const asked = displayOptional(variable?.toUpperCase());
  const secret = displayOptional(secretName);
  if (asked === null) return <Breakable text={secret ?? "—"} />;
  return (
    <>
      <Breakable text={asked} />
      {secret !== null && secretName?.toUpperCase() !== variable?.toUpperCase() ? (
        <div className={ui.muted}>
          from <Breakable text={secret} />
        </div>
      ) : null}
    </>
  );
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
  const grants = useLinkData(
    (a) => a.listGrants({ all: true }),
    (e) => e.kind === "authority" && e.event.type === "grant.changed",
    [],
  );
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
      <PageHeader
        title="Activity"
        subtitle="Every request, decision, delivery and change, newest first. Secret values are never logged."
      />
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
          <input
            id={`${id}-agent`}
            className={ui.input}
            value={agent}
            onChange={(e) => setAgent(e.target.value)}
            placeholder="any agent"
            spellCheck={false}
          />
        </Field>
        <Field label="Variable" id={`${id}-variable`}>
          <input
            id={`${id}-variable`}
            className={ui.input}
            value={variable}
            onChange={(e) => setVariable(e.target.value)}
            placeholder="any variable"
            spellCheck={false}
          />
        </Field>
        <Field label="Secret" id={`${id}-secret`}>
          <input
            id={`${id}-secret`}
            className={ui.input}
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
            placeholder="any secret"
            spellCheck={false}
          />
        </Field>
        <Field label="Called host" id={`${id}-host`}>
          <input
            id={`${id}-host`}
            className={ui.input}
            value={host}
            onChange={(e) => setHost(e.target.value)}
            placeholder="any host"
            spellCheck={false}
          />
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
          <p>
            {Object.keys(filter).length > 0
              ? "Nothing matches this filter."
              : "Requests, approvals and deliveries are recorded here as they happen."}
          </p>
        </EmptyState>
      ) : (
        <>
          <TableRegion label="Activity table">
            <table className={`${ui.table ?? ""} ${ui.wrapTable ?? ""}`} aria-label="Activity">
              <TableHead columns={["When", "What", "Agent", "Program", "Secret", "Outcome", "Call"]} />
              <tbody>
                {events.map((e) => (
                  <tr key={e.id}>
                    <td data-label="When" className={s.whenCell}>
                      <Time ms={e.at} now={now} />
                    </td>
                    <td data-label="What">
                      {describeAction(e.action, e.grantId === null ? undefined : grantsById.get(e.grantId))}
                      {/* An agent acting on its own request is "the agent"; its ID is in the Agent column already. */}
                      <div className={`${ui.muted ?? ""} ${s.small ?? ""}`}>
                        by{" "}
                        {e.agentClientId !== null && e.actor === `agent:${e.agentClientId}`
                          ? "the agent"
                          : lowerFirst(displayText(describeActor(e.actor), 80))}
                      </div>
                    </td>
                    <td data-label="Agent" className={ui.mono} data-empty={e.agentClientId === null || undefined}>
                      <Breakable text={displayOptional(e.agentClientId, 80) ?? "—"} />
                    </td>
                    <td
                      data-label="Program"
                      className={s.programColumn}
                      data-empty={e.program === null || e.program === undefined || undefined}
                    >
                      <ProgramCell program={e.program ?? null} />
                    </td>
                    <td
                      data-label="Secret"
                      className={ui.mono}
                      data-empty={(e.variable === null && e.secretName === null) || undefined}
                    >
                      <SecretCell variable={e.variable} secretName={e.secretName} />
                    </td>
                    <td data-label="Outcome" className={s.outcomeColumn}>
                      {describeOutcome(e, grantsById)}
                    </td>
                    <td data-label="Call" data-empty={e.call === null || e.call === undefined || undefined}>
                      {e.call ? (
                        <>
                          <span className={ui.mono}>
                            <Breakable
                              text={`${e.call.method} ${displayText(e.call.host, 300)}${displayText(e.call.path, 300)}`}
                            />
                          </span>
                          <div className={`${ui.muted ?? ""} ${s.small ?? ""}`}>{callAnswer(e.call)}</div>
                        </>
                      ) : (
                        "—"
                      )}
                    </td>
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

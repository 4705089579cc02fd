/**
 * Pending requests, newest first: the program the Link verified (executable, script, folder,
 * terminal session, parent), what the agent says it is, the variable and why. Approve opens a dialog
 * with the grant's terms (GrantTermsParts.tsx: once, this process, this terminal session, this
 * program for a while, or — with a warning — any program claiming the agent's client ID; read or
 * use-only; limits) and the secret to give; Deny answers at once. Requests that expire disappear live.
 */
import { Check, Inbox, X } from "lucide-react";
import { useId, useState } from "react";
import type { RequestView, SecretView } from "../../../shared/authority.js";
import { displayText } from "../../../shared/display.js";
import { describeBinding } from "../../../shared/grant-terms.js";
import { LinkError } from "../../../shared/errors.js";
import { normalizeVariable } from "../../../shared/protocol.js";
import { describeApproval } from "../../../shared/wording.js";
import { Button, Dialog, EmptyState, ErrorBanner, Field, Loading, PageHeader, Time, ui, useNotice } from "../components/ui.js";
import { dateTime, inTime } from "../format.js";
import { useNow } from "../hooks.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData, type LinkData } from "../link-context.js";
import { AgentClaim, TermsFields, termsBody, useTermsChoice, VerifiedProgram } from "./GrantTermsParts.js";
import s from "./screens.module.css";

export const isRequestEvent = isAuthority("request.created", "request.decided");

/** Pending requests, loaded (and kept live) by the window, which also counts them in the sidebar. */
export function usePendingRequests(): LinkData<RequestView[]> {
  return useLinkData((a) => a.listRequests({ status: "pending" }), isRequestEvent, []);
}

export function RequestsScreen({ requests }: { requests: LinkData<RequestView[]> }) {
  const now = useNow(1000);
  const api = useLinkApi();
  const secrets = useLinkData((a) => a.listSecrets({}), isAuthority("secret.changed"), []);
  const [approving, setApproving] = useState<RequestView | null>(null);
  const action = useLinkAction();
  const notify = useNotice();

  const visible = (requests.data ?? []).filter((r) => r.expiresAt > now).sort((a, b) => b.createdAt - a.createdAt);

  async function deny(r: RequestView): Promise<void> {
    if (await action.run(r.id, () => api.denyRequest({ requestId: r.id }))) {
      notify(`Denied ${displayText(r.variable.toUpperCase())} to ${displayText(r.agentName ?? r.agentClientId, 80)}. The agent has been told.`);
      requests.reload();
    }
  }

  return (
    <section aria-labelledby="requests-title">
      <PageHeader title="Requests" subtitle="Agents on this machine asking for a secret they have no grant for." />
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      {requests.error ? <ErrorBanner error={requests.error} /> : null}
      {requests.data === null && requests.loading ? (
        <Loading what="requests" />
      ) : visible.length === 0 ? (
        <EmptyState icon={Inbox} title="No pending requests">
          <p>When an agent asks for a secret it has no grant for, the request appears here for you to approve or deny.</p>
        </EmptyState>
      ) : (
        <ul className={s.list} aria-label="Pending requests">
          {visible.map((r) => (
            <RequestCard key={r.id} request={r} now={now} onApprove={() => setApproving(r)} onDeny={() => void deny(r)} denying={action.busy === r.id} />
          ))}
        </ul>
      )}
      {approving ? (
        <ApproveDialog
          request={approving}
          secrets={secrets.data ?? []}
          onClose={() => setApproving(null)}
          onDone={(text) => {
            setApproving(null);
            notify(text);
            requests.reload();
          }}
        />
      ) : null}
    </section>
  );
}

/**
 * One request: the verified program first (what the Link read from the OS), then what the agent
 * says it is. Exported for cards that show several variables of one request (batch).
 */
export function RequestCard({ request: r, now, onApprove, onDeny, denying }: { request: RequestView; now: number; onApprove: () => void; onDeny: () => void; denying: boolean }) {
  // Everything here but the ids was chosen by the agent or whoever started it: escaped and cut (issue 16 item 6).
  const who = displayText(r.agentName ?? r.agentClientId, 80);
  const program = r.process === null ? "A program that could not be identified" : displayText(baseNameOf(r.process.executable));
  const variable = displayText(r.variable.toUpperCase());
  const titleId = `req-${r.id}`;
  return (
    <li className={s.card} aria-labelledby={titleId} data-request-id={r.id}>
      <div>
        <h2 className={s.cardTitle} id={titleId}>
          <span data-testid="verified-program">{program}</span>
          <span className={ui.muted}>wants</span>
          <span className={s.variable}>{variable}</span>
        </h2>
        <p className={s.meta} data-testid="agent-claim">
          <AgentClaim name={r.agentName} clientId={r.agentClientId} />
        </p>
        {r.reason !== null ? <p className={s.reason}>“{displayText(r.reason, 300)}”</p> : null}
        <div className={s.meta}>
          <span>
            Asked <Time ms={r.createdAt} now={now} />
          </span>
          <span title={dateTime(r.expiresAt)}>Expires in {inTime(r.expiresAt, now)}</span>
        </div>
      </div>
      <div className={s.actions}>
        <Button variant="primary" icon={Check} onClick={onApprove} aria-label={`Approve ${variable} for ${who}`}>
          Approve…
        </Button>
        <Button variant="danger" icon={X} onClick={onDeny} busy={denying} aria-label={`Deny ${variable} for ${who}`}>
          Deny
        </Button>
      </div>
      <VerifiedProgram process={r.process} />
    </li>
  );
}

/** The last path segment of an executable ("node" for /usr/bin/node), or "unknown program". */
function baseNameOf(p: string | null): string {
  return p === null ? "unknown program" : (p.split(/[\\/]/).pop() ?? p);
}

const NEW_SECRET = "\u0000new";

/** `onDone(text)`: approved; `text` is the confirmation to show ("Approved X for Y, for 1 hour."). */
function ApproveDialog({ request: r, secrets, onClose, onDone }: { request: RequestView; secrets: SecretView[]; onClose: () => void; onDone: (text: string) => void }) {
  const api = useLinkApi();
  const id = useId();
  const terms = useTermsChoice(r);
  const match = secrets.find((x) => normalizeVariable(x.name) === r.variable);
  const [secret, setSecret] = useState<string>(match?.name ?? NEW_SECRET);
  const [newName, setNewName] = useState(r.variable.toUpperCase());
  const [newValue, setNewValue] = useState("");
  const action = useLinkAction();
  const creating = secret === NEW_SECRET;

  async function approve(): Promise<void> {
    let confirmation = "";
    const done = await action.run("approve", async () => {
      // Checked before a new secret is stored, so a typo in the terms stores nothing.
      const body = termsBody(terms);
      let secretName = secret;
      if (creating) {
        if (newValue.length === 0) throw new LinkError("bad_request", `Enter the value of ${newName}, or choose an existing secret.`);
        secretName = (await api.setSecret({ name: newName.trim(), value: newValue })).name;
        setNewValue("");
      }
      const grant = await api.approveRequest({ requestId: r.id, ...body, secretName });
      const how = grant.scope === "process" ? "while its process runs" : describeApproval(grant.scope, grant);
      const bound = grant.binding === undefined ? "" : ` Bound: ${describeBinding(grant.binding.kind)}.`;
      confirmation = `Approved ${displayText(grant.variable.toUpperCase())} for ${displayText(grant.agentName ?? grant.agentClientId, 80)}, ${how}.${bound}`;
    });
    if (done) onDone(confirmation);
  }

  return (
    <Dialog
      title={`Give ${displayText(r.variable.toUpperCase())} to ${displayText(r.agentName ?? r.agentClientId, 80)}?`}
      onClose={onClose}
      onSubmit={() => void approve()}
      error={action.error}
      actions={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" type="submit" icon={Check} busy={action.busy !== null}>
            Approve
          </Button>
        </>
      }
    >
      <TermsFields id={id} t={terms} />
      <Field label="Secret to give" id={`${id}-secret`} hint={match ? undefined : `No secret matches ${r.variable.toUpperCase()} yet.`}>
        <select id={`${id}-secret`} className={ui.input} value={secret} onChange={(e) => setSecret(e.target.value)}>
          {secrets.map((x) => (
            <option key={x.id} value={x.name}>
              {x.name}
            </option>
          ))}
          <option value={NEW_SECRET}>New secret…</option>
        </select>
      </Field>
      {creating ? (
        <>
          <Field label="Name of the new secret" id={`${id}-name`}>
            <input id={`${id}-name`} className={ui.input} value={newName} onChange={(e) => setNewName(e.target.value)} autoComplete="off" spellCheck={false} />
          </Field>
          <Field label="Value" id={`${id}-value`} hint="Stored encrypted by the authority; it is never shown again.">
            <input id={`${id}-value`} className={ui.input} type="password" value={newValue} onChange={(e) => setNewValue(e.target.value)} autoComplete="new-password" spellCheck={false} aria-describedby={`${id}-value-hint`} />
          </Field>
        </>
      ) : null}
      <p className={ui.hint}>The agent’s waiting call receives the value as soon as you approve.</p>
    </Dialog>
  );
}

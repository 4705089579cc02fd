/**
 * Pending requests, newest first: the program the Link verified (executable, script, folder,
 * terminal session, parent), what the agent says it is, the variable and why. Approve opens a dialog
 * with the grant's terms (GrantTermsParts.tsx: once, this process, this terminal session, this
 * program for a while, or — with a warning — any program claiming the agent's client ID; read or
 * use-only; limits) and the secret to give; Deny answers at once. Requests that expire disappear live.
 * Requests an agent made together (one `resolveMany`, same `batchId`) are one card listing each
 * variable with its secret: "Approve all…" opens the same dialog for its terms and approves each
 * with its own secret; each variable can also be approved or denied alone.
 */
import { Check, Inbox, X } from "lucide-react";
import { useId, useState } from "react";
import type { ApproveBody, RequestView, SecretView } from "../../../shared/authority.js";
import type { ApproveItemResult } from "../../../shared/control.js";
import { displayOptional, displayText } from "../../../shared/display.js";
import { describeBinding } from "../../../shared/grant-terms.js";
import { LinkError } from "../../../shared/errors.js";
import type { PresenceProof } from "../../../shared/presence.js";
import { normalizeVariable } from "../../../shared/protocol.js";
import { describeApproval } from "../../../shared/wording.js";
import {
  Button,
  Dialog,
  EmptyState,
  ErrorBanner,
  Field,
  Loading,
  PageHeader,
  Time,
  ui,
  useNotice,
} from "../components/ui.js";
import { dateTime, inTime } from "../format.js";
import { useNow } from "../hooks.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData, type LinkData } from "../link-context.js";
import { ProofFields, useProofStep, type ProvenCall } from "../presence.js";
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
  const [approvingBatch, setApprovingBatch] = useState<BatchItem[] | null>(null);
  const action = useLinkAction();
  const notify = useNotice();

  const visible = (requests.data ?? []).filter((r) => r.expiresAt > now).sort((a, b) => b.createdAt - a.createdAt);
  const groups = groupRequests(visible);

  async function deny(r: RequestView): Promise<void> {
    if (await action.run(r.id, () => api.denyRequest({ requestId: r.id }))) {
      notify(
        `Denied ${displayText(r.variable.toUpperCase())} to ${displayText(r.agentName ?? r.agentClientId, 80)}. The agent has been told.`,
      );
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
          <p>
            When an agent asks for a secret it has no grant for, the request appears here for you to approve or deny.
          </p>
        </EmptyState>
      ) : (
        <ul className={s.list} aria-label="Pending requests">
          {groups.map(([only, ...others]) =>
            only === undefined ? null : others.length === 0 ? (
              <RequestCard
                key={only.id}
                request={only}
                now={now}
                onApprove={() => setApproving(only)}
                onDeny={() => void deny(only)}
                denying={action.busy === only.id}
              />
            ) : (
              <BatchCard
                key={only.batchId ?? only.id}
                requests={[only, ...others]}
                secrets={secrets.data ?? []}
                now={now}
                busy={action.busy}
                onApproveAll={setApprovingBatch}
                onApprove={setApproving}
                onDeny={(r) => void deny(r)}
              />
            ),
          )}
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
      {approvingBatch?.[0] ? (
        <ApproveDialog
          request={approvingBatch[0].request}
          batch={approvingBatch}
          secrets={secrets.data ?? []}
          onClose={() => setApprovingBatch(null)}
          onDone={(text) => {
            setApprovingBatch(null);
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
export function RequestCard({
  request: r,
  now,
  onApprove,
  onDeny,
  denying,
}: {
  request: RequestView;
  now: number;
  onApprove: () => void;
  onDeny: () => void;
  denying: boolean;
}) {
  // Everything here but the ids was chosen by the agent or whoever started it: escaped and cut (issue 16 item 6).
  const who = displayText(r.agentName ?? r.agentClientId, 80);
  const program =
    r.process === null ? "A program that could not be identified" : displayText(baseNameOf(r.process.executable));
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
        {r.requesterWaits === false ? (
          <p className={s.meta} data-testid="does-not-wait">
            It does not wait for your answer (a pyper-sdk program): approve it, then run it again in the same terminal.
          </p>
        ) : null}
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

/**
 * The cards to show, in the order of `requests`: a request alone, or every request of one batch
 * (same `batchId`) together, placed where its newest request is.
 */
export function groupRequests(requests: readonly RequestView[]): RequestView[][] {
  const groups: RequestView[][] = [];
  const byBatch = new Map<string, RequestView[]>();
  for (const r of requests) {
    const batch = r.batchId ?? null;
    if (batch === null) {
      groups.push([r]);
      continue;
    }
    const group = byBatch.get(batch);
    if (group !== undefined) {
      group.push(r);
      continue;
    }
    const created = [r];
    byBatch.set(batch, created);
    groups.push(created);
  }
  return groups;
}

/** One variable of a batch with the secret chosen for it ("" when none matches yet). */
interface BatchItem {
  request: RequestView;
  secretName: string;
}

function BatchCard({
  requests,
  secrets,
  now,
  busy,
  onApproveAll,
  onApprove,
  onDeny,
}: {
  requests: RequestView[];
  secrets: SecretView[];
  now: number;
  busy: string | null;
  onApproveAll: (items: BatchItem[]) => void;
  onApprove: (r: RequestView) => void;
  onDeny: (r: RequestView) => void;
}) {
  const id = useId();
  const [first] = requests;
  const [chosen, setChosen] = useState<Record<string, string>>({});
  if (first === undefined) return null;
  // The agent's own words, escaped and cut (issue 16 item 6).
  const who = displayText(first.agentName ?? first.agentClientId, 80);
  const titleId = `batch-${first.id}`;
  const secretFor = (r: RequestView): string =>
    chosen[r.id] ?? secrets.find((x) => normalizeVariable(x.name) === r.variable)?.name ?? "";
  // In the order the agent asked (the list itself is newest first).
  const items = [...requests]
    .sort((a, b) => a.createdAt - b.createdAt)
    .map((r) => ({ request: r, secretName: secretFor(r) }));
  return (
    <li className={s.card} aria-labelledby={titleId} data-batch-id={first.batchId ?? undefined}>
      <div>
        <h2 className={s.cardTitle} id={titleId}>
          {who}
          {first.agentName !== null ? <span className={s.clientId}>{displayText(first.agentClientId, 80)}</span> : null}
          <span className={s.muted}>wants {requests.length} secrets</span>
        </h2>
        {first.reason !== null ? <p className={s.reason}>“{displayText(first.reason, 300)}”</p> : null}
        <div className={s.meta}>
          <span>
            Asked <Time ms={first.createdAt} now={now} />
          </span>
          <span>Expires in {inTime(Math.min(...requests.map((r) => r.expiresAt)), now)}</span>
          {first.process !== null ? (
            <span title={displayOptional(first.process.executable) ?? undefined}>
              {displayText(baseNameOf(first.process.executable))} (pid {first.process.pid}) in{" "}
              {displayOptional(first.process.cwd, 300) ?? "unknown"}
            </span>
          ) : (
            <span>Process unknown (not identified on this machine)</span>
          )}
        </div>
      </div>
      <div className={s.actions}>
        <Button
          variant="primary"
          icon={Check}
          onClick={() => onApproveAll(items)}
          aria-label={`Approve all ${requests.length} for ${who}`}
        >
          Approve all…
        </Button>
      </div>
      <ul className={s.batchItems} aria-label="Variables asked for together">
        {items.map(({ request: r, secretName }) => {
          const variable = displayText(r.variable.toUpperCase());
          return (
            <li key={r.id} data-request-id={r.id}>
              <span className={s.variable}>{variable}</span>{" "}
              <span className={s.muted} aria-hidden="true">
                secret
              </span>{" "}
              <select
                id={`${id}-${r.id}`}
                aria-label={`Secret for ${variable}`}
                className={ui.input}
                value={secretName}
                onChange={(e) => setChosen({ ...chosen, [r.id]: e.target.value })}
              >
                {secretName === "" ? <option value="">No secret named {variable} yet</option> : null}
                {secrets.map((x) => (
                  <option key={x.id} value={x.name}>
                    {x.name}
                  </option>
                ))}
              </select>{" "}
              <span className={s.batchButtons}>
                <Button small icon={Check} onClick={() => onApprove(r)} aria-label={`Approve ${variable} for ${who}`}>
                  Approve…
                </Button>
                <Button
                  small
                  variant="danger"
                  icon={X}
                  onClick={() => onDeny(r)}
                  busy={busy === r.id}
                  aria-label={`Deny ${variable} for ${who}`}
                >
                  Deny
                </Button>
              </span>
            </li>
          );
        })}
      </ul>
    </li>
  );
}

/** One sentence for the items "Approve all" could not approve (the others were approved). */
function batchFailures(results: ApproveItemResult[], batch: BatchItem[]): LinkError | null {
  const failed = results.flatMap((r) =>
    r.ok
      ? []
      : [
          `${batch.find((b) => b.request.id === r.requestId)?.request.variable.toUpperCase() ?? r.requestId}: ${r.error.message}`,
        ],
  );
  return failed.length === 0
    ? null
    : new LinkError("conflict", `Approved ${results.length - failed.length} of ${results.length}. ${failed.join(" ")}`);
}

/** The last path segment of an executable ("node" for /usr/bin/node), or "unknown program". */
function baseNameOf(p: string | null): string {
  return p === null ? "unknown program" : (p.split(/[\\/]/).pop() ?? p);
}

const NEW_SECRET = "\u0000new";

/**
 * Approves `request` with the terms chosen here; with `batch` ("Approve all" on a batch card) the
 * same terms approve every request of the batch, each with the secret chosen on the card. When the
 * Link wants a proof of presence, Approve first checks the terms, then asks for the proof in the
 * same dialog (one step, one proof for the whole batch). `onDone(text)`: approved; `text` is the
 * confirmation to show ("Approved X for Y, for 1 hour.").
 */
function ApproveDialog({
  request: r,
  batch,
  secrets,
  onClose,
  onDone,
}: {
  request: RequestView;
  batch?: BatchItem[];
  secrets: SecretView[];
  onClose: () => void;
  onDone: (text: string) => void;
}) {
  const api = useLinkApi();
  const id = useId();
  const terms = useTermsChoice(r);
  const match = secrets.find((x) => normalizeVariable(x.name) === r.variable);
  const [secret, setSecret] = useState<string>(match?.name ?? NEW_SECRET);
  const [newName, setNewName] = useState(r.variable.toUpperCase());
  const [newValue, setNewValue] = useState("");
  const action = useLinkAction();
  const proof = useProofStep();
  const creating = secret === NEW_SECRET;
  const who = displayText(r.agentName ?? r.agentClientId, 80);
  const variables =
    batch !== undefined
      ? batch.map((b) => displayText(b.request.variable.toUpperCase())).join(", ")
      : displayText(r.variable.toUpperCase());

  /** The terms as the call will carry them; throws LinkError with a sentence for what cannot be sent. */
  function checked(): { body: Omit<ApproveBody, "secretName">; secretName: string } {
    const body = termsBody(terms);
    if (batch === undefined && creating && newValue.length === 0)
      throw new LinkError("bad_request", `Enter the value of ${newName}, or choose an existing secret.`);
    return { body, secretName: creating ? newName.trim() : secret };
  }

  /** Approves; `prove` gives the proof for the exact call (null: this Link asks for none). */
  async function approve(prove: ((call: ProvenCall) => Promise<PresenceProof>) | null): Promise<void> {
    let confirmation = "";
    const done = await action.run("approve", async () => {
      // Checked before a new secret is stored, so a typo in the terms stores nothing.
      const { body, secretName } = checked();
      if (batch !== undefined) {
        const params = {
          items: batch.map((b) => ({
            requestId: b.request.id,
            ...(b.secretName !== "" ? { secretName: b.secretName } : {}),
          })),
          ...body,
        };
        const presence = prove === null ? undefined : await prove({ method: "approveRequests", params });
        const { results } = await api.approveRequests({ ...params, ...(presence !== undefined ? { presence } : {}) });
        const failed = batchFailures(results, batch);
        // The approved ones leave the list by themselves (request events); the dialog stays open to say which failed.
        if (failed !== null) throw failed;
        confirmation = `Approved ${variables} for ${who}.`;
        return;
      }
      const params = { requestId: r.id, ...body, secretName };
      const presence = prove === null ? undefined : await prove({ method: "approveRequest", params });
      if (creating) {
        // A typed proof covers storing the value too; a passkey's is bound to the approval alone.
        const stored = await api.setSecret({
          name: secretName,
          value: newValue,
          ...(presence !== undefined && presence.method !== "passkey" ? { presence } : {}),
        });
        setSecret(stored.name);
        setNewValue("");
      }
      const grant = await api.approveRequest({ ...params, ...(presence !== undefined ? { presence } : {}) });
      const how = grant.scope === "process" ? "while its process runs" : describeApproval(grant.scope, grant);
      const bound = grant.binding === undefined ? "" : ` Bound: ${describeBinding(grant.binding.kind)}.`;
      confirmation = `Approved ${displayText(grant.variable.toUpperCase())} for ${displayText(grant.agentName ?? grant.agentClientId, 80)}, ${how}.${bound}`;
    });
    proof.clear();
    if (done) onDone(confirmation);
  }

  async function submit(): Promise<void> {
    if (proof.asking) return approve(() => Promise.resolve(proof.typed()));
    if (!proof.needed) return approve(null);
    // The terms are checked before the proof is asked for: a typo is fixed where it was made.
    if (await action.run("check", () => Promise.resolve(checked()))) proof.ask();
  }

  return (
    <Dialog
      title={`Give ${variables} to ${who}?`}
      onClose={onClose}
      onSubmit={() => void submit()}
      error={proof.describe(action.error)}
      actions={
        <>
          {proof.asking ? <Button onClick={proof.back}>Back</Button> : <Button onClick={onClose}>Cancel</Button>}
          <Button variant="primary" type="submit" icon={Check} busy={action.busy !== null}>
            {proof.asking ? "Confirm and approve" : "Approve"}
          </Button>
        </>
      }
    >
      {proof.asking ? (
        <ProofFields
          id={`${id}-proof`}
          step={proof}
          why={`Confirm it is you: give ${variables} to ${who}.`}
          busy={action.busy !== null}
          onPasskey={() => void approve((call) => proof.passkey(call))}
        />
      ) : (
        <>
          <TermsFields id={id} t={terms} />
          {batch !== undefined ? (
            <p className={ui.hint}>
              Each variable gets the secret chosen for it on the card; these terms apply to all {batch.length}.
            </p>
          ) : (
            <Field
              label="Secret to give"
              id={`${id}-secret`}
              hint={match ? undefined : `No secret matches ${r.variable.toUpperCase()} yet.`}
            >
              <select
                id={`${id}-secret`}
                className={ui.input}
                value={secret}
                onChange={(e) => setSecret(e.target.value)}
              >
                {secrets.map((x) => (
                  <option key={x.id} value={x.name}>
                    {x.name}
                  </option>
                ))}
                <option value={NEW_SECRET}>New secret…</option>
              </select>
            </Field>
          )}
          {batch === undefined && creating ? (
            <>
              <Field label="Name of the new secret" id={`${id}-name`}>
                <input
                  id={`${id}-name`}
                  className={ui.input}
                  value={newName}
                  onChange={(e) => setNewName(e.target.value)}
                  autoComplete="off"
                  spellCheck={false}
                />
              </Field>
              <Field
                label="Value"
                id={`${id}-value`}
                hint="Stored encrypted by the authority; it is never shown again."
              >
                <input
                  id={`${id}-value`}
                  className={ui.input}
                  type="password"
                  value={newValue}
                  onChange={(e) => setNewValue(e.target.value)}
                  autoComplete="new-password"
                  spellCheck={false}
                  aria-describedby={`${id}-value-hint`}
                />
              </Field>
            </>
          ) : null}
          <p className={ui.hint}>The agent’s waiting call receives the value as soon as you approve.</p>
        </>
      )}
    </Dialog>
  );
}

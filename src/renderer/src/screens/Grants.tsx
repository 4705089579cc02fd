/**
 * Grants: which agent may read which variable, for how long, what it binds to (program, terminal
 * session, process, or any program claiming the client ID), what it allows (read, or use only to
 * destinations) and its limits; limits are editable ("Edit limits") and grants revocable.
 */
import { ShieldCheck, ShieldOff, SlidersHorizontal } from "lucide-react";
import { useId, useState } from "react";
import type { GrantView } from "../../../shared/authority.js";
import { displayText } from "../../../shared/display.js";
import { describeBinding } from "../../../shared/grant-terms.js";
import { describeMode, describePolicy } from "../../../shared/grant-terms-text.js";
import { inlineCode } from "../../../shared/process.js";
import { describeEndReason } from "../../../shared/wording.js";
import {
  Badge,
  Button,
  ConfirmDialog,
  Dialog,
  EmptyState,
  ErrorBanner,
  Loading,
  PageHeader,
  TableHead,
  TableRegion,
  Time,
  ui,
  useNotice,
} from "../components/ui.js";
import { baseName, describeScope } from "../format.js";
import { useNow } from "../hooks.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import { PolicyFields, policyDraftOf, policyOf } from "./GrantTermsParts.js";
import { ProofFields, tryWithoutProof, useProofStep, withPresence, type Prover } from "../presence.js";
import s from "./screens.module.css";

export function GrantsScreen() {
  const api = useLinkApi();
  const now = useNow(15_000);
  const [all, setAll] = useState(false);
  const grants = useLinkData(
    (a) => a.listGrants({ all }),
    isAuthority("grant.changed", "request.decided", "secret.changed"),
    [all],
  );
  const [revoking, setRevoking] = useState<GrantView | null>(null);
  const [limiting, setLimiting] = useState<GrantView | null>(null);
  const action = useLinkAction();
  const notify = useNotice();

  async function revoke(g: GrantView): Promise<void> {
    const done = await action.run("revoke", () => api.revokeGrant({ grantId: g.id }));
    setRevoking(null);
    if (done) {
      notify(
        `Revoked: ${displayText(g.agentName ?? g.agentClientId, 80)} no longer gets ${displayText(g.variable.toUpperCase())}.`,
      );
      grants.reload();
    }
  }

  const rows = (grants.data ?? []).slice().sort((a, b) => b.createdAt - a.createdAt);
  return (
    <section>
      <PageHeader
        title="Grants"
        subtitle="What each agent may read without asking again. Revoking takes effect on its next call."
        actions={
          <label className={s.checkbox}>
            <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Show ended grants
          </label>
        }
      />
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      {grants.error ? <ErrorBanner error={grants.error} /> : null}
      {grants.data === null && grants.loading ? (
        <Loading what="grants" />
      ) : rows.length === 0 ? (
        <EmptyState icon={ShieldCheck} title={all ? "No grants yet" : "No grants in force"}>
          <p>Approve a request for longer than once and the grant appears here, ready to revoke.</p>
        </EmptyState>
      ) : (
        <TableRegion label="Grants table">
          <table className={ui.table} aria-label="Grants">
            <TableHead columns={["Agent", "Variable", "Scope", "Created", "Last used"]} actions />
            <tbody>
              {rows.map((g) => (
                <tr key={g.id} data-grant-id={g.id}>
                  <td data-label="Agent">
                    {displayText(g.agentName ?? g.agentClientId, 80)}
                    {g.agentName !== null ? (
                      <div className={`${ui.mono ?? ""} ${ui.muted ?? ""}`}>{displayText(g.agentClientId, 80)}</div>
                    ) : null}
                  </td>
                  <td data-label="Variable">
                    <span className={s.variable}>{displayText(g.variable.toUpperCase())}</span>
                    {g.secretName.toLowerCase() !== g.variable ? (
                      <div className={ui.muted}>from {displayText(g.secretName)}</div>
                    ) : null}
                  </td>
                  <td className={s.termsCell} data-label="Scope">
                    {g.endedAt !== null ? (
                      <Badge tone="neutral">Ended: {describeEndReason(g.endReason)}</Badge>
                    ) : (
                      describeScope(g, now)
                    )}
                    <GrantTerms grant={g} />
                  </td>
                  <td data-label="Created">
                    <Time ms={g.createdAt} now={now} />
                  </td>
                  <td data-label="Last used">
                    {g.lastUsedAt === null ? (
                      <span className={ui.muted}>never</span>
                    ) : (
                      <Time ms={g.lastUsedAt} now={now} />
                    )}
                  </td>
                  <td>
                    {g.endedAt === null ? (
                      <div className={`${ui.rowActions ?? ""} ${s.stackedActions ?? ""}`}>
                        <Button
                          small
                          icon={SlidersHorizontal}
                          onClick={() => setLimiting(g)}
                          aria-label={`Edit limits of ${displayText(g.variable.toUpperCase())} for ${displayText(g.agentName ?? g.agentClientId, 80)}`}
                        >
                          Limits
                        </Button>
                        <Button
                          small
                          variant="danger"
                          icon={ShieldOff}
                          onClick={() => setRevoking(g)}
                          aria-label={`Revoke ${displayText(g.variable.toUpperCase())} for ${displayText(g.agentName ?? g.agentClientId, 80)}`}
                        >
                          Revoke
                        </Button>
                      </div>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {limiting ? (
        <LimitsDialog
          grant={limiting}
          onClose={() => setLimiting(null)}
          onSaved={(g) => {
            setLimiting(null);
            notify(
              `Limits of ${displayText(g.variable.toUpperCase())} for ${displayText(g.agentName ?? g.agentClientId, 80)}: ${describePolicy(g.policy)}.`,
            );
            grants.reload();
          }}
        />
      ) : null}
      {revoking ? (
        <ConfirmDialog
          title="Revoke this grant?"
          action="Revoke"
          icon={ShieldOff}
          busy={action.busy !== null}
          onConfirm={() => void revoke(revoking)}
          onCancel={() => setRevoking(null)}
        >
          <p>
            {displayText(revoking.agentName ?? revoking.agentClientId, 80)} will no longer get{" "}
            <strong>{displayText(revoking.variable.toUpperCase())}</strong>. Its next call becomes a new request for you
            to approve.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/** Short words for a binding in the table (the full sentence is the cell's tooltip). */
const SHORT_BINDING = {
  process: "this process",
  session: "terminal session",
  program: "program",
  client: "any program with this ID",
} as const;

/** What a grant binds to, what it allows and its limits, under its scope (paths escaped: chosen by whoever started the agent). */
function GrantTerms({ grant: g }: { grant: GrantView }) {
  const b = g.binding;
  const kind = b?.kind ?? "client";
  const program = b?.program ?? null;
  const code = program === null ? null : inlineCode(program);
  const where =
    program === null
      ? ""
      : `${program.executable}${program.script ? ` ${program.script}` : ""}${code !== null ? ` ${code}` : ""}${program.cwd ? ` in ${program.cwd}` : ""}`;
  return (
    <div className={ui.muted} data-testid="grant-terms">
      <div title={displayText(`${describeBinding(kind)}${where ? `: ${where}` : ""}`, 600)}>
        {SHORT_BINDING[kind]}
        {kind === "session" && b?.sessionId !== null && b?.sessionId !== undefined ? ` ${b.sessionId}` : ""}
        {program !== null && kind !== "client" ? (
          <>
            : {displayText(baseName(program.executable))}
            {program.script ? ` ${displayText(baseName(program.script))}` : ""}
            {code !== null ? ` ${displayText(code, 80)}` : ""}
          </>
        ) : null}
      </div>
      {g.mode?.kind === "use" ? <div>{displayText(describeMode(g.mode), 300)}</div> : null}
      {g.policy ? <div>Limits: {describePolicy(g.policy)}</div> : null}
    </div>
  );
}

/** "Edit limits": the policy form for one grant; saving replaces its limits (or removes them). */
function LimitsDialog({
  grant,
  onClose,
  onSaved,
}: {
  grant: GrantView;
  onClose: () => void;
  onSaved: (g: GrantView) => void;
}) {
  const api = useLinkApi();
  const id = useId();
  const [draft, setDraft] = useState(() => policyDraftOf(grant.policy));
  const action = useLinkAction();
  const proof = useProofStep();
  async function save(prove: Prover | null): Promise<void> {
    const result: { saved: GrantView | null } = { saved: null };
    // Tighter limits need no proof; looser ones do, and the Link says which with `presence_required`.
    await action.run("limits", async () => {
      const params = { grantId: grant.id, policy: policyOf(draft) };
      await tryWithoutProof(proof, prove, { method: "updateGrantPolicy", params }, async (presence) => {
        result.saved = await api.updateGrantPolicy({ ...params, ...withPresence(presence) });
      });
    });
    proof.clear();
    if (result.saved !== null) onSaved(result.saved);
  }
  return (
    <Dialog
      title={`Limits of ${displayText(grant.variable.toUpperCase())} for ${displayText(grant.agentName ?? grant.agentClientId, 80)}`}
      onClose={onClose}
      onSubmit={() => void save(proof.asking ? () => Promise.resolve(proof.typed()) : null)}
      error={proof.describe(action.error)}
      actions={
        <>
          {proof.asking ? <Button onClick={proof.back}>Back</Button> : <Button onClick={onClose}>Cancel</Button>}
          <Button variant="primary" type="submit" busy={action.busy !== null}>
            {proof.asking ? "Confirm and save" : "Save limits"}
          </Button>
        </>
      }
    >
      {proof.asking ? (
        <ProofFields
          id={`${id}-proof`}
          step={proof}
          why={`Confirm it is you: loosen the limits of ${displayText(grant.variable.toUpperCase())}.`}
          busy={action.busy !== null}
          onPasskey={() => void save((c) => proof.passkey(c))}
        />
      ) : (
        <>
          <PolicyFields id={id} draft={draft} onChange={setDraft} />
          <p className={ui.hint}>Checked on every use; a use outside them is refused with the reason.</p>
        </>
      )}
    </Dialog>
  );
}

/** Grants: which agent may read which variable, for how long, when last used; revocable. */
import { ShieldCheck, ShieldOff } from "lucide-react";
import { useState } from "react";
import type { GrantView } from "../../../shared/authority.js";
import { displayText } from "../../../shared/display.js";
import { describeEndReason } from "../../../shared/wording.js";
import { Badge, Button, ConfirmDialog, EmptyState, ErrorBanner, Loading, PageHeader, TableHead, TableRegion, Time, ui, useNotice } from "../components/ui.js";
import { describeScope } from "../format.js";
import { useNow } from "../hooks.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import s from "./screens.module.css";

export function GrantsScreen() {
  const api = useLinkApi();
  const now = useNow(15_000);
  const [all, setAll] = useState(false);
  const grants = useLinkData((a) => a.listGrants({ all }), isAuthority("grant.changed", "request.decided", "secret.changed"), [all]);
  const [revoking, setRevoking] = useState<GrantView | null>(null);
  const action = useLinkAction();
  const notify = useNotice();

  async function revoke(g: GrantView): Promise<void> {
    const done = await action.run("revoke", () => api.revokeGrant({ grantId: g.id }));
    setRevoking(null);
    if (done) {
      notify(`Revoked: ${displayText(g.agentName ?? g.agentClientId, 80)} no longer gets ${displayText(g.variable.toUpperCase())}.`);
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
                  <td>
                    {displayText(g.agentName ?? g.agentClientId, 80)}
                    {g.agentName !== null ? <div className={`${ui.mono ?? ""} ${ui.muted ?? ""}`}>{displayText(g.agentClientId, 80)}</div> : null}
                  </td>
                  <td>
                    <span className={s.variable}>{displayText(g.variable.toUpperCase())}</span>
                    {g.secretName.toLowerCase() !== g.variable ? <div className={ui.muted}>from {displayText(g.secretName)}</div> : null}
                  </td>
                  <td>{g.endedAt !== null ? <Badge tone="neutral">Ended: {describeEndReason(g.endReason)}</Badge> : describeScope(g, now)}</td>
                  <td>
                    <Time ms={g.createdAt} now={now} />
                  </td>
                  <td>{g.lastUsedAt === null ? <span className={ui.muted}>never</span> : <Time ms={g.lastUsedAt} now={now} />}</td>
                  <td>
                    {g.endedAt === null ? (
                      <Button small variant="danger" icon={ShieldOff} onClick={() => setRevoking(g)} aria-label={`Revoke ${displayText(g.variable.toUpperCase())} for ${displayText(g.agentName ?? g.agentClientId, 80)}`}>
                        Revoke
                      </Button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {revoking ? (
        <ConfirmDialog title="Revoke this grant?" action="Revoke" icon={ShieldOff} busy={action.busy !== null} onConfirm={() => void revoke(revoking)} onCancel={() => setRevoking(null)}>
          <p>
            {displayText(revoking.agentName ?? revoking.agentClientId, 80)} will no longer get <strong>{displayText(revoking.variable.toUpperCase())}</strong>. Its next call becomes a new request for you to approve.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

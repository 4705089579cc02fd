/** Settings: account and sign-out, the authority, notifications, start at login, and about. */
import { Bell, LogOut, Power } from "lucide-react";
import { useState } from "react";
import type { LinkSettings, LinkStatus } from "../../../shared/control.js";
import { Badge, Button, ConfirmDialog, ErrorBanner, PageHeader, ui } from "../components/ui.js";
import { useDesktop, useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import s from "./screens.module.css";

export function SettingsScreen({ status }: { status: LinkStatus }) {
  const api = useLinkApi();
  const desktop = useDesktop();
  const settings = useLinkData((a) => a.getSettings({}), (e) => e.kind === "settings", []);
  const [confirmSignOut, setConfirmSignOut] = useState(false);
  const action = useLinkAction();

  async function change(patch: Partial<LinkSettings>): Promise<void> {
    if (await action.run("settings", () => api.updateSettings(patch))) settings.reload();
  }

  async function signOut(): Promise<void> {
    await action.run("sign-out", () => api.logout({}));
    setConfirmSignOut(false);
  }

  const authority = status.authority;
  const account = authority === null ? "No authority" : authority.account === "oauth" ? "Signed in" : authority.account === "local-token" ? "This machine (local token)" : "Not signed in";
  return (
    <section>
      <PageHeader title="Settings" subtitle="How this Piper Link signs in, where its secrets live, and how it behaves." />
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      {settings.error ? <ErrorBanner error={settings.error} /> : null}

      <div className={s.section}>
        <h2>Account</h2>
        <div className={s.row}>
          <div>
            <p>{account}</p>
            {status.account != null ? (
              <p>
                {status.account.name}
                {status.account.email !== null ? ` (${status.account.email})` : ""}
              </p>
            ) : null}
            <p className={ui.hint}>
              This machine: {status.machine ?? "not registered"}
              {status.instanceIdRedacted !== null ? ` (${status.instanceIdRedacted})` : ""}
            </p>
          </div>
          <Button variant="danger" icon={LogOut} onClick={() => setConfirmSignOut(true)} disabled={status.state !== "ready"}>
            Sign out
          </Button>
        </div>
      </div>

      <div className={s.section}>
        <h2>Authority</h2>
        {authority === null ? (
          <p className={ui.hint}>This Link runs without an authority: agents can discover it, but no secrets can be brokered.</p>
        ) : (
          <div className={s.row}>
            <div>
              <p className={ui.mono}>{authority.url}</p>
              <p className={ui.hint}>
                {authority.mode === "embedded" ? "Embedded on this machine (SQLite in the app’s data folder)." : "Remote authority."} To use another one, start Piper Link with{" "}
                <code>--authority https://…</code>.
              </p>
            </div>
            {authority.connected ? <Badge tone="success">Connected</Badge> : <Badge tone="warning">{authority.error === null ? "Connecting" : "Unreachable"}</Badge>}
          </div>
        )}
      </div>

      <div className={s.section}>
        <h2>Behaviour</h2>
        <label className={s.toggle}>
          <input type="checkbox" checked={settings.data?.notifications ?? true} disabled={settings.data === null} onChange={(e) => void change({ notifications: e.target.checked })} />
          <span>
            <Bell size={14} aria-hidden="true" /> Notify me of new requests
            <small>{desktop ? "A desktop notification for each request; click it to decide." : "Shown by the desktop app; the browser window updates live either way."}</small>
          </span>
        </label>
        <label className={s.toggle}>
          <input type="checkbox" checked={settings.data?.startAtLogin ?? false} disabled={settings.data === null || !desktop} onChange={(e) => void change({ startAtLogin: e.target.checked })} />
          <span>
            <Power size={14} aria-hidden="true" /> Start Piper Link when I log in
            <small>{desktop ? "Runs in the tray so agents always find it." : "On a headless machine, run `piper-link service install` to start it with your user session."}</small>
          </span>
        </label>
      </div>

      <div className={s.section}>
        <h2>About</h2>
        <dl className={s.facts}>
          <dt>Version</dt>
          <dd>{status.version}</dd>
          <dt>Agents connect to</dt>
          <dd>{status.url}</dd>
          <dt>pyper-sdk context</dt>
          <dd>http://127.0.0.1:{status.port}/piper-link-context</dd>
          <dt>Log file</dt>
          <dd>{status.logFile}</dd>
        </dl>
      </div>

      {confirmSignOut ? (
        <ConfirmDialog title="Sign out of Piper Link?" action="Sign out" icon={LogOut} busy={action.busy === "sign-out"} onConfirm={() => void signOut()} onCancel={() => setConfirmSignOut(false)}>
          <p>Agents on this machine stop getting secrets until you sign in again. Your secrets and grants stay with the authority.</p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/**
 * The window: no vault yet -> choose a passphrase; locked -> unlock; signed out -> sign-in; signed in
 * -> sidebar (Requests, Grants, Secrets, Activity, Settings, Lock now).
 */
import { Activity, Inbox, KeyRound, Lock, Settings, ShieldCheck, WifiOff, type LucideIcon } from "lucide-react";
import { useState, type ReactNode } from "react";
import type { LinkStatus } from "../../shared/control.js";
import type { NavigableView } from "../../shared/ipc.js";
import { Badge, Banner, ErrorBanner, Loading, NoticeProvider } from "./components/ui.js";
import {
  LinkStatusProvider,
  useConnection,
  useLinkAction,
  useLinkApi,
  useLinkData,
  useLinkEvents,
  useNavigationRequests,
} from "./link-context.js";
import { ActivityScreen } from "./screens/Activity.js";
import { GrantsScreen } from "./screens/Grants.js";
import { RequestsScreen, usePendingRequests } from "./screens/Requests.js";
import { SecretsScreen } from "./screens/Secrets.js";
import { SettingsScreen } from "./screens/Settings.js";
import { SignInScreen } from "./screens/SignIn.js";
import { LegacyGrantsBanner, LockedScreen, NewVaultScreen, UnattendedLabel } from "./screens/Vault.js";
import s from "./App.module.css";

type View = NavigableView;

const NAV: Array<{ view: View; label: string; icon: LucideIcon }> = [
  { view: "requests", label: "Requests", icon: Inbox },
  { view: "grants", label: "Grants", icon: ShieldCheck },
  { view: "secrets", label: "Secrets", icon: KeyRound },
  { view: "activity", label: "Activity", icon: Activity },
  { view: "settings", label: "Settings", icon: Settings },
];

export function App() {
  const connection = useConnection();
  const status = useLinkData(
    (api) => api.status({}),
    (e) => e.kind === "status",
    [],
  );

  if (connection === "unauthorized") {
    return (
      <main className={s.center}>
        <ErrorBanner
          error={{
            code: "unauthorized",
            message:
              "This page’s access to Piper Link has expired (the Link restarted). Run `piper-link ui` for a new address.",
          }}
        />
      </main>
    );
  }
  if (status.data === null) {
    return (
      <main className={s.center}>
        {status.error ? <ErrorBanner error={status.error} /> : <Loading what="Piper Link" />}
      </main>
    );
  }
  const reconnecting =
    connection === "reconnecting" ? (
      <Banner tone="warning" icon={WifiOff}>
        <p>Lost the connection to Piper Link. Reconnecting…</p>
      </Banner>
    ) : null;
  if (status.data.vault.state !== "unlocked") {
    return (
      <>
        {reconnecting}
        {status.data.vault.state === "new" ? <NewVaultScreen /> : <LockedScreen status={status.data} />}
      </>
    );
  }
  if (status.data.state !== "ready") {
    return (
      <>
        {reconnecting}
        <SignInScreen status={status.data} />
      </>
    );
  }
  return (
    <LinkStatusProvider status={status.data}>
      <NoticeProvider>
        <SignedIn status={status.data} reconnecting={reconnecting} />
      </NoticeProvider>
    </LinkStatusProvider>
  );
}

function SignedIn({ status, reconnecting }: { status: LinkStatus; reconnecting: ReactNode }) {
  const [view, setView] = useState<View>("requests");
  useNavigationRequests(setView);
  useLinkEvents((event) => {
    if (event.kind === "show") setView(event.view);
  });
  const pending = usePendingRequests();
  const pendingCount = (pending.data ?? []).filter((r) => r.expiresAt > Date.now()).length;
  const authority = status.authority;
  const api = useLinkApi();
  const locking = useLinkAction();
  return (
    <div className={s.shell}>
      <div className={s.rail}>
        <nav className={s.sidebar} aria-label="Piper Link">
          <div className={s.brand}>
            <span className={s.brandMark} aria-hidden="true">
              <KeyRound size={16} />
            </span>
            Piper Link
          </div>
          <ul className={s.nav}>
            {NAV.map(({ view: v, label, icon: Icon }) => (
              <li key={v}>
                <button
                  type="button"
                  className={s.navItem}
                  aria-current={view === v ? "page" : undefined}
                  onClick={() => setView(v)}
                >
                  <Icon size={17} aria-hidden="true" />
                  <span>{label}</span>
                  {v === "requests" && pendingCount > 0 ? (
                    <Badge tone="accent" label={`${pendingCount} pending`}>
                      {pendingCount}
                    </Badge>
                  ) : (
                    <span />
                  )}
                </button>
              </li>
            ))}
          </ul>
          <button
            type="button"
            className={s.navItem}
            onClick={() => void locking.run("lock", () => api.lock({}))}
            aria-busy={locking.busy !== null || undefined}
          >
            <Lock size={17} aria-hidden="true" />
            <span>Lock now</span>
            <span />
          </button>
          <div className={s.footer}>
            <p>
              <span
                className={`${s.dot ?? ""} ${authority?.connected === true ? "" : (s.dotOff ?? "")}`}
                aria-hidden="true"
              />
              {authority === null
                ? "No authority"
                : authority.connected
                  ? "Authority connected"
                  : "Authority unreachable"}
            </p>
            <p>
              {status.agents.length} agent{status.agents.length === 1 ? "" : "s"} connected
            </p>
            <p>Machine {status.instanceIdRedacted}</p>
          </div>
        </nav>
      </div>
      <main className={s.main}>
        <div className={s.content}>
          {reconnecting}
          {locking.error ? <ErrorBanner error={locking.error} onDismiss={locking.clearError} /> : null}
          {status.vault.unattended ? <UnattendedLabel /> : null}
          <LegacyGrantsBanner count={status.vault.legacyGrants} />
          {authority !== null && !authority.connected && authority.error !== null ? (
            <Banner tone="warning" icon={WifiOff}>
              <p>
                The authority is unreachable ({authority.error}). Agents get a retryable error until it is back; Piper
                Link keeps trying.
              </p>
            </Banner>
          ) : null}
          {view === "requests" ? <RequestsScreen requests={pending} /> : null}
          {view === "grants" ? <GrantsScreen /> : null}
          {view === "secrets" ? <SecretsScreen /> : null}
          {view === "activity" ? <ActivityScreen /> : null}
          {view === "settings" ? <SettingsScreen status={status} /> : null}
        </div>
      </main>
    </div>
  );
}

/**
 * Settings: account and sign-out, the authority, security (the approval PIN, the idle lock,
 * passkeys, what Piper Link cannot protect against here), notifications, start at login, and about.
 * What widens something (notifications off, a longer idle lock, a new PIN or passkey) asks for a
 * proof of presence; the Link decides which, and the window asks when it answers `presence_required`.
 */
import { AlertTriangle, Bell, Fingerprint, KeyRound, LogOut, Power, Timer } from "lucide-react";
import { useId, useState } from "react";
import type { LinkSettings, LinkStatus } from "../../../shared/control.js";
import type { PresenceProof } from "../../../shared/presence.js";
import { PIN_MIN_LENGTH, PinSchema, type PresenceMethod } from "../../../shared/presence.js";
import { durationText } from "../../../shared/wording.js";
import { Badge, Button, ConfirmDialog, ErrorBanner, Field, PageHeader, ui, useNotice } from "../components/ui.js";
import { isPresenceRequired, ProofDialog, registerPasskey, type ProvenCall } from "../presence.js";
import { useDesktop, useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import { UnattendedLabel } from "./Vault.js";
import s from "./screens.module.css";

export function SettingsScreen({ status }: { status: LinkStatus }) {
  const api = useLinkApi();
  const desktop = useDesktop();
  const notify = useNotice();
  const settings = useLinkData(
    (a) => a.getSettings({}),
    (e) => e.kind === "settings",
    [],
  );
  const [confirmSignOut, setConfirmSignOut] = useState(false);
  const action = useLinkAction();
  const [proving, setProving] = useState<Proving | null>(null);

  async function change(patch: Partial<LinkSettings>): Promise<void> {
    // Turning notifications off hides new requests from the person: the Link wants a proof for that.
    if (
      await action.run("settings", () =>
        api.updateSettings(patch).catch((err: unknown) => {
          if (!isPresenceRequired(err)) throw err;
          setProving({
            title: "Turn notifications off?",
            why: "Confirm it is you: stop notifying you of new requests.",
            call: { method: "updateSettings", params: patch },
            run: (presence) => api.updateSettings({ ...patch, presence }),
            done: "Notifications are off.",
          });
        }),
      )
    )
      settings.reload();
  }

  async function signOut(): Promise<void> {
    await action.run("sign-out", () => api.logout({}));
    setConfirmSignOut(false);
  }

  const authority = status.authority;
  const account =
    authority === null
      ? "No authority"
      : authority.account === "oauth"
        ? "Signed in"
        : authority.account === "local-token"
          ? "This machine (local token)"
          : "Not signed in";
  return (
    <section>
      <PageHeader
        title="Settings"
        subtitle="How this Piper Link signs in, where its secrets live, and how it behaves."
      />
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
          <Button
            variant="danger"
            icon={LogOut}
            onClick={() => setConfirmSignOut(true)}
            disabled={status.state !== "ready"}
          >
            Sign out
          </Button>
        </div>
      </div>

      <div className={s.section}>
        <h2>Authority</h2>
        {authority === null ? (
          <p className={ui.hint}>
            This Link runs without an authority: agents can discover it, but no secrets can be brokered.
          </p>
        ) : (
          <div className={s.row}>
            <div>
              <p className={ui.mono}>{authority.url}</p>
              <p className={ui.hint}>
                {authority.mode === "embedded"
                  ? "Embedded on this machine (SQLite in the app’s data folder)."
                  : "Remote authority."}{" "}
                To use another one, start Piper Link with <code>--authority https://…</code>.
              </p>
            </div>
            {authority.connected ? (
              <Badge tone="success">Connected</Badge>
            ) : (
              <Badge tone="warning">{authority.error === null ? "Connecting" : "Unreachable"}</Badge>
            )}
          </div>
        )}
      </div>

      <SecuritySection status={status} onProve={setProving} />

      <div className={s.section}>
        <h2>Behaviour</h2>
        <label className={s.toggle}>
          <input
            type="checkbox"
            checked={settings.data?.notifications ?? true}
            disabled={settings.data === null}
            onChange={(e) => void change({ notifications: e.target.checked })}
          />
          <span>
            <Bell size={14} aria-hidden="true" /> Notify me of new requests
            <small>
              {desktop
                ? "A desktop notification for each request; click it to decide."
                : "Shown by the desktop app; the browser window updates live either way."}
            </small>
          </span>
        </label>
        <label className={s.toggle}>
          <input
            type="checkbox"
            checked={settings.data?.startAtLogin ?? false}
            disabled={settings.data === null || !desktop}
            onChange={(e) => void change({ startAtLogin: e.target.checked })}
          />
          <span>
            <Power size={14} aria-hidden="true" /> Start Piper Link when I log in
            <small>
              {desktop
                ? "Runs in the tray so agents always find it."
                : "On a headless machine, run `piper-link service install` to start it with your user session."}
            </small>
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

      {proving !== null ? (
        <ProofDialog
          title={proving.title}
          why={proving.why}
          call={proving.call}
          run={proving.run}
          {...(proving.only !== undefined ? { only: proving.only } : {})}
          onClose={() => setProving(null)}
          onDone={() => {
            notify(proving.done);
            setProving(null);
            settings.reload();
          }}
        />
      ) : null}
      {confirmSignOut ? (
        <ConfirmDialog
          title="Sign out of Piper Link?"
          action="Sign out"
          icon={LogOut}
          busy={action.busy === "sign-out"}
          onConfirm={() => void signOut()}
          onCancel={() => setConfirmSignOut(false)}
        >
          <SignOutConsequences />
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/**
 * What signing out ends, counted before the person confirms: a later sign-in gives this machine a new
 * instance ID, and grants belong to the instance they were made on, so every live grant ends.
 */
function SignOutConsequences() {
  const grants = useLinkData(
    (a) => a.listGrants({ all: false }),
    (e) => e.kind === "authority" && e.event.type === "grant.changed",
    [],
  );
  const live = grants.data?.filter((g) => g.endedAt === null).length ?? null;
  return (
    <>
      <p>Agents on this machine stop getting secrets at once. Your secrets stay with the authority.</p>
      <p data-testid="sign-out-grants">
        {live === null
          ? "Signing in again gives this machine a new instance ID, which ends the grants agents hold here."
          : live === 0
            ? "No agent holds a grant here now."
            : `Signing in again gives this machine a new instance ID: the ${live === 1 ? "1 grant" : `${live} grants`} agents hold here end, and each agent asks again.`}
      </p>
    </>
  );
}

/** A widening change waiting for its proof (shown in a ProofDialog). */
interface Proving {
  title: string;
  why: string;
  call: ProvenCall;
  run: (presence: PresenceProof) => Promise<unknown>;
  /** The confirmation once done. */
  done: string;
  only?: readonly PresenceMethod[];
}

/** Idle lock choices, in minutes. */
const IDLE_CHOICES = [15, 60, 4 * 60, 12 * 60, 24 * 60, 7 * 24 * 60];

/**
 * Security: the approval PIN (set or change; proof: the passphrase or a passkey), the idle lock
 * (a longer one needs a proof), passkeys (registering one needs the passphrase or PIN), the risks
 * Piper Link can see and cannot remove, and the unattended label.
 */
function SecuritySection({ status, onProve }: { status: LinkStatus; onProve: (p: Proving) => void }) {
  const api = useLinkApi();
  const id = useId();
  const action = useLinkAction();
  const notify = useNotice();
  const vault = status.vault;
  const [pin, setPin] = useState("");
  const [pinAgain, setPinAgain] = useState("");
  const [passkeyName, setPasskeyName] = useState("Passkey");
  const [pinInvalid, setPinInvalid] = useState<string | null>(null);
  const idleChoices = IDLE_CHOICES.includes(vault.idleLockMinutes)
    ? IDLE_CHOICES
    : [...IDLE_CHOICES, vault.idleLockMinutes].sort((a, b) => a - b);

  function choosePin(): void {
    const checked = PinSchema.safeParse(pin);
    if (!checked.success) return setPinInvalid(`A PIN is ${PIN_MIN_LENGTH} to 32 digits.`);
    if (pin !== pinAgain) return setPinInvalid("The two PINs differ.");
    setPinInvalid(null);
    const chosen = checked.data;
    onProve({
      title: vault.pinSet ? "Change the approval PIN?" : "Set an approval PIN?",
      why: "Confirm it is you with your passphrase.",
      call: { method: "setPin", params: { pin: chosen } },
      run: async (presence) => {
        await api.setPin({ pin: chosen, presence });
        setPin("");
        setPinAgain("");
      },
      done: "The approval PIN is set.",
      only: ["passphrase", "passkey"],
    });
  }

  async function setIdle(minutes: number): Promise<void> {
    await action.run("idle", () =>
      api.setIdleLock({ minutes }).then(
        () => notify(`Piper Link now locks after ${durationText(minutes * 60_000)} without you.`),
        (err: unknown) => {
          if (!isPresenceRequired(err)) throw err;
          onProve({
            title: "Lock after a longer time?",
            why: `Confirm it is you: lock only after ${durationText(minutes * 60_000)} without you.`,
            call: { method: "setIdleLock", params: { minutes } },
            run: (presence) => api.setIdleLock({ minutes, presence }),
            done: `Piper Link now locks after ${durationText(minutes * 60_000)} without you.`,
          });
        },
      ),
    );
  }

  function addPasskey(): void {
    const name = passkeyName.trim() === "" ? "Passkey" : passkeyName.trim();
    onProve({
      title: "Register a passkey?",
      why: "Confirm it is you, then follow your browser’s passkey prompt.",
      call: { method: "passkeyRegister", params: { name } },
      run: (presence) => registerPasskey(api, name, presence),
      done: `Registered the passkey “${name}”.`,
      only: ["passphrase", "pin"],
    });
  }

  return (
    <div className={s.section} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Security</h2>
      {vault.unattended ? <UnattendedLabel /> : null}
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      <form
        className={s.row}
        onSubmit={(e) => {
          e.preventDefault();
          choosePin();
        }}
      >
        <div>
          <p>
            <KeyRound size={14} aria-hidden="true" /> Approval PIN: {vault.pinSet ? "set" : "not set"}
          </p>
          <p className={ui.hint}>
            Typed to approve a request or widen a grant, so your passphrase is needed only to unlock. {PIN_MIN_LENGTH}{" "}
            or more digits; {vault.pinTriesAllowed} wrong tries lock Piper Link.
          </p>
          <div className={s.termsGrid}>
            <Field label={vault.pinSet ? "New PIN" : "PIN"} id={`${id}-pin`} error={pinInvalid}>
              <input
                id={`${id}-pin`}
                className={ui.input}
                type="password"
                inputMode="numeric"
                autoComplete="off"
                maxLength={32}
                value={pin}
                onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))}
              />
            </Field>
            <Field label="The same PIN again" id={`${id}-pin-again`}>
              <input
                id={`${id}-pin-again`}
                className={ui.input}
                type="password"
                inputMode="numeric"
                autoComplete="off"
                maxLength={32}
                value={pinAgain}
                onChange={(e) => setPinAgain(e.target.value.replace(/\D/g, ""))}
              />
            </Field>
          </div>
        </div>
        <Button type="submit">{vault.pinSet ? "Change PIN…" : "Set PIN…"}</Button>
      </form>
      <div className={s.row}>
        <div>
          <Field
            label="Lock after this long without you"
            id={`${id}-idle`}
            hint="Agents’ requests do not count as you being here. A longer time needs your PIN."
          >
            <select
              id={`${id}-idle`}
              className={ui.input}
              value={vault.idleLockMinutes}
              disabled={action.busy !== null}
              onChange={(e) => void setIdle(Number(e.target.value))}
              aria-describedby={`${id}-idle-hint`}
            >
              {idleChoices.map((m) => (
                <option key={m} value={m}>
                  {durationText(m * 60_000)}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <Timer size={18} aria-hidden="true" />
      </div>
      <form
        className={s.row}
        onSubmit={(e) => {
          e.preventDefault();
          addPasskey();
        }}
      >
        <div>
          <p>
            <Fingerprint size={14} aria-hidden="true" /> Passkeys: {vault.passkeys === 0 ? "none" : vault.passkeys}
          </p>
          <Field
            label="Name of a new passkey"
            id={`${id}-passkey`}
            hint="A passkey can approve instead of the PIN (your device asks for your fingerprint, face or device PIN)."
          >
            <input
              id={`${id}-passkey`}
              className={ui.input}
              value={passkeyName}
              onChange={(e) => setPasskeyName(e.target.value)}
              maxLength={100}
              autoComplete="off"
              aria-describedby={`${id}-passkey-hint`}
            />
          </Field>
        </div>
        <Button type="submit" icon={Fingerprint}>
          Register a passkey…
        </Button>
      </form>
      <div>
        <h3 className={s.subheading}>What Piper Link cannot protect against here</h3>
        {status.risks.length === 0 ? (
          <p className={ui.hint}>
            Piper Link sees no extra risk on this machine. It cannot protect against root, a kernel exploit, or you
            typing your passphrase or PIN into an agent.
          </p>
        ) : (
          <ul className={s.risks} aria-label="Residual risks">
            {status.risks.map((r) => (
              <li key={r.code}>
                <AlertTriangle size={14} aria-hidden="true" /> {r.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

/**
 * The locked vault as the window shows it (DESIGN.md section 9): the Locked screen (why it locked,
 * the passphrase, Unlock), the first run's "choose a passphrase" (twice, its strength shown as it
 * is typed, an optional approval PIN), the "unprotected at rest" label of an unattended unlock, and
 * the review of grants approved before approvals needed a proof (keep with a proof, or end).
 */
import { AlertTriangle, Lock, LockOpen, ShieldAlert, ShieldOff } from "lucide-react";
import { useId, useState, type ReactNode } from "react";
import type { GrantView } from "../../../shared/authority.js";
import type { LinkStatus } from "../../../shared/control.js";
import { displayText } from "../../../shared/display.js";
import { describeBinding } from "../../../shared/grant-terms.js";
import { describeMode } from "../../../shared/grant-terms-text.js";
import { LinkError } from "../../../shared/errors.js";
import { PIN_MIN_LENGTH, PinSchema, passphraseWeakness, type LockReason } from "../../../shared/presence.js";
import {
  Badge,
  Banner,
  Button,
  Dialog,
  ErrorBanner,
  Field,
  TableHead,
  TableRegion,
  ui,
  useNotice,
} from "../components/ui.js";
import { describeScope } from "../format.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData } from "../link-context.js";
import { ProofDialog } from "../presence.js";
import s from "./screens.module.css";

/** Why the vault is locked, in words. */
/** The card both vault screens are: a form with the lock mark and a title, submitted with Enter. */
function VaultCard({
  id,
  title,
  onSubmit,
  children,
}: {
  id: string;
  title: string;
  onSubmit: () => void;
  children: ReactNode;
}) {
  return (
    <main className={s.signin}>
      <form
        className={`${s.signinCard ?? ""} ${s.vaultForm ?? ""}`}
        aria-labelledby={`${id}-title`}
        onSubmit={(e) => {
          e.preventDefault();
          onSubmit();
        }}
      >
        <div className={s.logo} aria-hidden="true">
          <Lock size={30} />
        </div>
        <h1 id={`${id}-title`}>{title}</h1>
        {children}
      </form>
    </main>
  );
}

export function lockedReasonText(reason: LockReason | null): string {
  switch (reason) {
    case "started":
      return "Piper Link has just started. Unlock it once to let your agents ask for secrets again.";
    case "by_request":
      return "It was locked on request (Lock now, or piper-link lock).";
    case "idle":
      return "It locked itself after a while without you (see Settings for how long).";
    case "signed_out":
      return "It locked when you signed out.";
    case "too_many_wrong_pins":
      return "Too many wrong PINs were tried, so it wants the full passphrase.";
    case null:
      return "Unlock it to let your agents ask for secrets again.";
  }
}

/** Locked: agents get a `locked` error until the person unlocks with the passphrase. */
export function LockedScreen({ status }: { status: LinkStatus }) {
  const api = useLinkApi();
  const id = useId();
  const [passphrase, setPassphrase] = useState("");
  const action = useLinkAction();
  async function unlock(): Promise<void> {
    await action.run("unlock", async () => {
      if (passphrase === "") throw new LinkError("bad_request", "Enter your passphrase.");
      await api.unlock({ passphrase });
    });
    setPassphrase("");
  }
  const error =
    action.error?.code === "presence_failed"
      ? { code: action.error.code, message: "That is not the passphrase of this Piper Link. Try again." }
      : action.error;
  return (
    <VaultCard id={id} title="Piper Link is locked" onSubmit={() => void unlock()}>
      <p data-testid="locked-reason">{lockedReasonText(status.vault.lockedReason)}</p>
      <p>While it is locked, agents get a “locked” answer and no secret leaves it.</p>
      {error ? <ErrorBanner error={error} onDismiss={action.clearError} /> : null}
      <Field label="Passphrase" id={`${id}-passphrase`}>
        <input
          id={`${id}-passphrase`}
          className={ui.input}
          type="password"
          autoComplete="current-password"
          autoFocus
          value={passphrase}
          onChange={(e) => setPassphrase(e.target.value)}
        />
      </Field>
      <Button variant="primary" type="submit" className={s.wide} icon={LockOpen} busy={action.busy !== null}>
        Unlock
      </Button>
    </VaultCard>
  );
}

/** First run: choose the passphrase that locks everything Piper Link keeps, and optionally an approval PIN. */
export function NewVaultScreen() {
  const api = useLinkApi();
  const id = useId();
  const [passphrase, setPassphrase] = useState("");
  const [again, setAgain] = useState("");
  const [pin, setPin] = useState("");
  const action = useLinkAction();
  const weakness = passphrase === "" ? null : passphraseWeakness(passphrase);
  const mismatch = again !== "" && again !== passphrase ? "The two passphrases differ." : null;
  const pinError =
    pin !== "" && !PinSchema.safeParse(pin).success ? `A PIN is ${PIN_MIN_LENGTH} or more digits.` : null;
  async function create(): Promise<void> {
    await action.run("create", async () => {
      const weak = passphraseWeakness(passphrase);
      if (weak !== null) throw new LinkError("bad_request", weak);
      if (again !== passphrase)
        throw new LinkError("bad_request", "The two passphrases differ; type the same one twice.");
      if (pinError !== null) throw new LinkError("bad_request", pinError);
      await api.createVault({ passphrase, ...(pin !== "" ? { pin } : {}) });
    });
  }
  return (
    <VaultCard id={id} title="Choose a passphrase" onSubmit={() => void create()}>
      <p>
        It locks everything Piper Link keeps on this machine, and only you can say yes with it: a program running as you
        cannot read it anywhere. Write it down somewhere safe; it cannot be recovered.
      </p>
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      <Field label="Passphrase" id={`${id}-passphrase`} hint="A few unrelated words are strong and easy to remember.">
        <input
          id={`${id}-passphrase`}
          className={ui.input}
          type="password"
          autoComplete="new-password"
          autoFocus
          value={passphrase}
          onChange={(e) => setPassphrase(e.target.value)}
          aria-describedby={`${id}-passphrase-hint ${id}-strength`}
        />
      </Field>
      <p
        id={`${id}-strength`}
        className={weakness === null ? ui.hint : s.weak}
        role="status"
        aria-live="polite"
        data-testid="passphrase-strength"
      >
        {passphrase === "" ? "" : (weakness ?? "Strong enough.")}
      </p>
      <Field label="The same passphrase again" id={`${id}-again`} error={mismatch}>
        <input
          id={`${id}-again`}
          className={ui.input}
          type="password"
          autoComplete="new-password"
          value={again}
          onChange={(e) => setAgain(e.target.value)}
        />
      </Field>
      <Field
        label={`Approval PIN (optional, ${PIN_MIN_LENGTH}+ digits)`}
        id={`${id}-pin`}
        hint="Typed to approve a request, so the passphrase is needed only to unlock."
        error={pinError}
      >
        <input
          id={`${id}-pin`}
          className={ui.input}
          type="password"
          inputMode="numeric"
          autoComplete="off"
          value={pin}
          onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))}
          maxLength={32}
          aria-describedby={`${id}-pin-hint`}
        />
      </Field>
      <Button
        variant="primary"
        type="submit"
        className={s.wide}
        busy={action.busy !== null}
        disabled={weakness !== null || mismatch !== null || again === ""}
      >
        Create and unlock
      </Button>
    </VaultCard>
  );
}

/** The label of an unattended unlock: anyone who can read the passphrase file can open the vault. */
export function UnattendedLabel() {
  return (
    <Banner tone="warning" icon={AlertTriangle}>
      <p data-testid="unattended">
        <strong>Unprotected at rest:</strong> unlocked from a passphrase file (PIPER_LINK_PASSPHRASE_FILE). Anyone who
        can read that file can open what Piper Link keeps; approvals still need your PIN or a passkey.
      </p>
    </Banner>
  );
}

/** "N grants were approved before approvals needed your PIN — review them", with the review dialog. */
export function LegacyGrantsBanner({ count }: { count: number }) {
  const [open, setOpen] = useState(false);
  if (count === 0) return null;
  return (
    <>
      <Banner tone="warning" icon={ShieldAlert}>
        <p>
          {count === 1 ? "1 grant was" : `${count} grants were`} approved before approvals needed your PIN — review{" "}
          {count === 1 ? "it" : "them"}.{" "}
          <Button small onClick={() => setOpen(true)}>
            Review
          </Button>
        </p>
      </Banner>
      {open ? <LegacyGrantsDialog onClose={() => setOpen(false)} /> : null}
    </>
  );
}

/** The grants approved before proofs existed (`--bind any` ones first): keep each (a proof) or end it (no proof). */
function LegacyGrantsDialog({ onClose }: { onClose: () => void }) {
  const api = useLinkApi();
  const grants = useLinkData((a) => a.listLegacyGrants({}), isAuthority("grant.changed"), []);
  const action = useLinkAction();
  const notify = useNotice();
  const [keeping, setKeeping] = useState<GrantView[] | null>(null);
  const list = grants.data ?? [];
  async function end(ids: string[]): Promise<void> {
    if (
      await action.run("end", async () => {
        for (const grantId of ids) await api.revokeGrant({ grantId });
      })
    ) {
      notify(ids.length === 1 ? "Ended 1 grant." : `Ended ${ids.length} grants.`);
      grants.reload();
    }
  }
  return (
    <>
      <Dialog
        title="Grants approved before approvals needed your PIN"
        onClose={onClose}
        error={action.error ?? grants.error}
        actions={
          <>
            <Button onClick={onClose}>Close</Button>
            <Button
              variant="danger"
              icon={ShieldOff}
              busy={action.busy === "end"}
              disabled={list.length === 0}
              onClick={() => void end(list.map((g) => g.id))}
            >
              End all
            </Button>
          </>
        }
      >
        <p className={ui.hint}>
          A program running as you could have approved these itself. Keep the ones you recognise (that takes your PIN);
          end the others.
        </p>
        {list.length === 0 ? (
          <p>{grants.loading ? "Loading…" : "Nothing left to review."}</p>
        ) : (
          <TableRegion label="Grants to review">
            <table className={ui.table} aria-label="Grants to review">
              <TableHead columns={["Agent", "Variable", "Bound to", "May", "Lasts"]} actions />
              <tbody>
                {list.map((g) => (
                  <tr key={g.id}>
                    <td data-label="Agent">{displayText(g.agentName ?? g.agentClientId, 80)}</td>
                    <td className={ui.mono} data-label="Variable">
                      {displayText(g.variable.toUpperCase())}
                    </td>
                    <td data-label="Bound to">
                      {g.binding?.kind === "client" || g.binding === undefined ? (
                        <Badge tone="warning">any program</Badge>
                      ) : (
                        describeBinding(g.binding.kind)
                      )}
                    </td>
                    <td data-label="May">{describeMode(g.mode ?? { kind: "read" })}</td>
                    <td data-label="Lasts">{describeScope(g)}</td>
                    <td className={ui.rowActions}>
                      <Button small onClick={() => setKeeping([g])}>
                        Keep
                      </Button>{" "}
                      <Button
                        small
                        variant="danger"
                        onClick={() => void end([g.id])}
                        aria-label={`End ${displayText(g.variable.toUpperCase())} for ${displayText(g.agentName ?? g.agentClientId, 80)}`}
                      >
                        End
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableRegion>
        )}
      </Dialog>
      {keeping !== null ? (
        <ProofDialog
          title="Keep this grant?"
          why={`Confirm it is you: keep ${keeping.map((g) => displayText(g.variable.toUpperCase())).join(", ")}.`}
          call={{ method: "keepLegacyGrants", params: { grantIds: keeping.map((g) => g.id) } }}
          run={(presence) => api.keepLegacyGrants({ grantIds: keeping.map((g) => g.id), presence })}
          onClose={() => setKeeping(null)}
          onDone={() => {
            setKeeping(null);
            notify("Kept.");
            grants.reload();
          }}
        />
      ) : null}
    </>
  );
}

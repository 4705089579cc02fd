/**
 * `piper-link unlock`, `lock` and `pin set`: the vault from a terminal (DESIGN.md section 9). The
 * passphrase and PIN are read from the controlling terminal only (terminal-proof.ts); `lock`
 * needs nothing, since locking only takes power away.
 */
import type { Command } from "commander";
import type { LinkStatus } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { callLink as call } from "./link-access.js";
import { ExitCode, type Output } from "./output.js";
import { askNewPassphrase, askNewPin, withTerminal, type Terminal } from "./terminal-proof.js";

type Runner = (job: (out: Output) => Promise<number>, json: boolean) => Promise<void>;

/** One line on the vault for `status` and the commands below. */
export function describeVault(status: LinkStatus): string {
  const v = status.vault;
  if (v.state === "new") return "vault: no passphrase yet (run `piper-link unlock` at a terminal, or open the window)";
  if (v.state === "locked")
    return `vault: locked${v.lockedReason === "too_many_wrong_pins" ? " after too many wrong PINs" : v.lockedReason === "idle" ? " (idle)" : ""} — unlock with \`piper-link unlock\``;
  const proofs = v.proofs.length === 0 ? "none yet: set a PIN with `piper-link pin set`" : v.proofs.join(", ");
  return `vault: unlocked${v.unattended ? " from a passphrase file — UNPROTECTED AT REST" : ""}; approvals need: ${proofs}; locks after ${v.idleLockMinutes} min without you`;
}

/** Creates the vault (first run) or unlocks it, asking on `terminal`. */
export async function unlockAt(terminal: Terminal, profile: string): Promise<LinkStatus> {
  const status = await call(profile, "status", {});
  if (status.vault.state === "unlocked") return status;
  if (status.vault.state === "new") {
    terminal.say("Piper Link keeps your keys locked under a passphrase that only you know.");
    const passphrase = await askNewPassphrase(terminal);
    const pin = await askNewPin(terminal, true);
    return call(profile, "createVault", { passphrase, ...(pin !== null ? { pin } : {}) });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(profile, "unlock", {
        passphrase: await terminal.askHidden("Passphrase to unlock Piper Link: "),
      });
    } catch (err) {
      if (!(err instanceof LinkError) || err.code !== "presence_failed" || attempt >= 3) throw err;
      terminal.say(err.message);
    }
  }
}

export function addVaultCommands(program: Command, profile: () => string, run: Runner): void {
  program
    .command("unlock")
    .description(
      "unlock Piper Link with your passphrase, asked on this terminal (first run: choose one, and an approval PIN)",
    )
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const status = await withTerminal((terminal) => unlockAt(terminal, profile()));
        out.result(status, `Unlocked. ${describeVault(status)}`);
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("lock")
    .description("lock Piper Link now: keys leave memory and agents get `locked` until you unlock")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const status = await call(profile(), "lock", {});
        out.result(status, "Locked. Unlock with `piper-link unlock`.");
        return ExitCode.ok;
      }, o.json === true);
    });

  const pin = program
    .command("pin")
    .description("the approval PIN: a short code, checked only in Piper Link's memory, that approves requests");
  pin
    .command("set")
    .description("set or change the approval PIN (asks your passphrase, then the new PIN twice, on this terminal)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const status = await withTerminal(async (terminal) => {
          const passphrase = await terminal.askHidden("Your Piper Link passphrase: ");
          const next = await askNewPin(terminal, false);
          if (next === null) throw new LinkError("bad_request", "No PIN was chosen.");
          return call(profile(), "setPin", { pin: next, presence: { method: "passphrase", passphrase } });
        });
        out.result(status, "Approval PIN set.");
        return ExitCode.ok;
      }, o.json === true);
    });
}

/**
 * Proofs of presence at a terminal (DESIGN.md section 9): the CLI reads a PIN, passphrase or account
 * password only from the **controlling terminal** (`/dev/tty`), with echo off — never from argv,
 * the environment, stdin or a file, which an agent running as the person can fill. With no
 * controlling terminal (an agent's subprocess, a pipe) it refuses with `presence_required` and says
 * where to approve instead. An agent that allocates its own pseudo-terminal gets a prompt it cannot
 * answer: it does not know the PIN.
 */
import fs from "node:fs";
import tty from "node:tty";
import { createHmac } from "node:crypto";
import {
  controlAction,
  type ControlMethod,
  type ControlParams,
  type ControlResult,
  type LinkStatus,
} from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { passphraseWeakness, pinMacMessage, PinSchema, type PresenceProof } from "../../shared/presence.js";
import { deriveKey } from "../core/vault/vault-crypto.js";
import { promptHidden } from "../core/runtime/keychain-choice.js";
import { callLink } from "./link-access.js";
import { hardenForProof } from "../../platform/harden.js";
import { cliEnv } from "./env.js";
import { verifyMemoryClosed } from "../../platform/memory-check.js";

export const NO_TERMINAL_MESSAGE =
  "This needs you to type your PIN or passphrase, and there is no terminal to ask on. Approve in the Piper Link window (`piper-link ui`), or run this command yourself at a terminal.";

/** A conversation on the controlling terminal. */
export interface Terminal {
  /** Asks with echo off; rejects `presence_required` on Ctrl+C / Ctrl+D. */
  askHidden(question: string): Promise<string>;
  say(line: string): void;
  close(): void;
}

/**
 * Opens `/dev/tty` for a proof; throws `presence_required` (exit 2) when this process has no
 * controlling terminal. The process is hardened first (platform/harden.ts): it is about to hold a
 * PIN or passphrase, so no debugger and no same-user reads of its memory.
 */
export async function openTerminal(): Promise<Terminal> {
  const hardening = await hardenForProof({ env: cliEnv().vars });
  // Checked again from a fresh syscall: a tracer that faked the first answer and left cannot fake this one.
  const open = await verifyMemoryClosed({ dumpable: hardening.notDumpable !== false });
  if (open !== null)
    throw new LinkError(
      "internal_error",
      `piper-link will not ask for your PIN or passphrase: another program is tracing it or has opened its memory (${open}).`,
    );
  let fd: number;
  try {
    fd = fs.openSync("/dev/tty", "r+");
  } catch {
    throw new LinkError("presence_required", NO_TERMINAL_MESSAGE);
  }
  const input = new tty.ReadStream(fd);
  const output = new tty.WriteStream(fd);
  const cancelled = (): LinkError => new LinkError("presence_required", "Nothing was entered; nothing was approved.");
  return {
    askHidden: (question) => promptHidden(question, input, output, cancelled),
    say: (line) => void output.write(`${line}\n`),
    close() {
      input.destroy();
      output.destroy();
    },
  };
}

/**
 * The PIN as a `pin-mac` for `method` with `params`: a challenge from the Link, the PIN typed here,
 * and only HMAC(scrypt(PIN), nonce ‖ action) sent back — so whatever relays the control channel
 * learns nothing it could use for another action.
 */
async function pinMac<M extends ControlMethod>(
  profile: string,
  terminal: Terminal,
  method: M,
  params: ControlParams<M>,
): Promise<PresenceProof> {
  const terms: Record<string, unknown> = { ...params };
  const challenge = await callLink(profile, "pinChallenge", { method, params: terms });
  const pin = await terminal.askHidden("Your Piper Link PIN: ");
  const key = await deriveKey(pin, { name: "scrypt", ...challenge.kdf });
  const mac = createHmac("sha256", key)
    .update(pinMacMessage(challenge.nonce, controlAction(method, terms)))
    .digest("base64url");
  key.fill(0);
  return { method: "pin-mac", challengeId: challenge.challengeId, mac };
}

/** Runs `talk` with the controlling terminal (openTerminal's hardening and refusals first), closing it after. */
export async function withTerminal<T>(talk: (terminal: Terminal) => Promise<T>): Promise<T> {
  const terminal = await openTerminal();
  try {
    return await talk(terminal);
  } finally {
    terminal.close();
  }
}

/** Asks the proof this Link accepts (`status.vault.proofs`) for `method` with `params`, naming what it is for. */
export async function askProof<M extends ControlMethod>(
  terminal: Terminal,
  status: LinkStatus,
  what: string,
  profile: string,
  method: M,
  params: ControlParams<M>,
): Promise<PresenceProof> {
  const proofs = status.vault.proofs;
  terminal.say(what);
  if (proofs.includes("pin")) return pinMac(profile, terminal, method, params);
  if (proofs.includes("password"))
    return {
      method: "password",
      password: await terminal.askHidden("Your account password (your team's authority checks it): "),
    };
  if (proofs.includes("passphrase"))
    return { method: "passphrase", passphrase: await terminal.askHidden("Your Piper Link passphrase: ") };
  if (proofs.includes("passkey"))
    throw new LinkError(
      "presence_required",
      "This Link accepts only your passkey here: approve in the Piper Link window (`piper-link ui`).",
    );
  if (status.vault.state !== "unlocked")
    throw new LinkError("locked", "Piper Link is locked. Run `piper-link unlock` first.");
  throw new LinkError(
    "presence_required",
    "No PIN is set and the passphrase came from a file. Set a PIN at a terminal with `piper-link pin set`.",
  );
}

/** How many times a wrong proof is asked again at the terminal (the Link's own count still applies). */
const PROOF_TRIES = 3;

/**
 * Calls `method` with `params`; when the Link answers `presence_required`, asks the proof on the
 * controlling terminal (saying `what` it is for) and calls again with it, again after a wrong one
 * while the Link allows. Calls that need no proof (narrowing) go through without a prompt.
 */
export async function callWithPresence<M extends ControlMethod>(
  profile: string,
  method: M,
  params: ControlParams<M>,
  what: string,
): Promise<ControlResult<M>> {
  try {
    return await callLink(profile, method, params);
  } catch (err) {
    if (!(err instanceof LinkError) || err.code !== "presence_required") throw err;
  }
  return withTerminal(async (terminal) => {
    for (let attempt = 1; ; attempt++) {
      const status = await callLink(profile, "status", {});
      const presence = await askProof(terminal, status, attempt === 1 ? what : "Try again.", profile, method, params);
      try {
        return await callLink(profile, method, { ...params, presence });
      } catch (err) {
        if (!(err instanceof LinkError) || err.code !== "presence_failed" || attempt >= PROOF_TRIES) throw err;
        terminal.say(err.message);
      }
    }
  });
}

/** Asks for a new passphrase twice on the terminal, with the strength check; three tries. */
export async function askNewPassphrase(terminal: Terminal): Promise<string> {
  for (let i = 0; i < 3; i++) {
    const first = await terminal.askHidden(
      "Choose a Piper Link passphrase (it unlocks your keys; a few unrelated words work well): ",
    );
    const weak = passphraseWeakness(first);
    if (weak !== null) {
      terminal.say(weak);
      continue;
    }
    if ((await terminal.askHidden("Repeat it: ")) === first) return first;
    terminal.say("The two passphrases differ. Try again.");
  }
  throw new LinkError("bad_request", "No passphrase was chosen; nothing was created.");
}

/** Asks for a new PIN twice (6+ digits); empty skips when `optional`. Returns null when skipped. */
export async function askNewPin(terminal: Terminal, optional: boolean): Promise<string | null> {
  for (let i = 0; i < 3; i++) {
    const first = await terminal.askHidden(
      optional
        ? "Choose an approval PIN (6+ digits; Enter to skip and approve with the passphrase): "
        : "Choose an approval PIN (6+ digits): ",
    );
    if (first === "" && optional) return null;
    if (!PinSchema.safeParse(first).success) {
      terminal.say("A PIN is at least 6 digits, digits only.");
      continue;
    }
    if ((await terminal.askHidden("Repeat the PIN: ")) === first) return first;
    terminal.say("The two PINs differ. Try again.");
  }
  throw new LinkError("bad_request", "No PIN was chosen.");
}

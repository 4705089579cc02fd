/**
 * The proof-of-presence step of the window (DESIGN.md section 9): after a widening action's own
 * dialog (Approve, edit limits, a secret's hosts, notifications off…), one extra step asks for what
 * the Link accepts now (`status.vault.proofs`), in this order: the approval PIN, a passkey, the
 * account password (a team authority checks it itself), the passphrase (offered only when there is
 * no PIN). The proof travels with the one call it proves; a passkey's challenge is bound to that
 * exact call (`presenceChallenge`). Typed proofs live only in this component's state and are
 * cleared after each try.
 */
import {
  startAuthentication,
  startRegistration,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from "@simplewebauthn/browser";
import { Fingerprint } from "lucide-react";
import { useCallback, useId, useMemo, useState } from "react";
import { z } from "zod";
import type { LinkApi } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import type { PresenceMethod, PresenceProof, VaultStatus } from "../../shared/presence.js";
import { Button, Dialog, Field, ui } from "./components/ui.js";
import { toUiError, useDesktop, useLinkAction, useLinkApi, useLinkStatus, type UiError } from "./link-context.js";

/**
 * The proofs to offer for a widening call, in the order they are asked: PIN (when set), passkey
 * (when one is registered), the account password (a team authority), the passphrase (only when no
 * PIN is offered: the PIN exists so the passphrase is typed rarely). `only` narrows the choice for
 * calls that accept fewer proofs (setting the PIN takes the passphrase or a passkey, whatever the PIN).
 */
export function offeredProofs(vault: VaultStatus, only?: readonly PresenceMethod[]): PresenceMethod[] {
  const accepted = (m: VaultStatus["proofs"][number]): boolean =>
    vault.proofs.includes(m) && (only === undefined || only.includes(m));
  const out: PresenceMethod[] = [];
  if (accepted("pin") && vault.pinSet) out.push("pin");
  if (accepted("passkey") && vault.passkeys > 0) out.push("passkey");
  if (accepted("password")) out.push("password");
  if (accepted("passphrase") && (!out.includes("pin") || only !== undefined)) out.push("passphrase");
  return out;
}

/** The call a proof is for: a control method and its exact params (without `presence`). */
export interface ProvenCall {
  method: string;
  params: Record<string, unknown>;
}

const TransportSchema = z.enum(["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]);
const DescriptorSchema = z.object({
  id: z.string(),
  type: z.literal("public-key"),
  transports: z.array(TransportSchema).optional(),
});
const UserVerificationSchema = z.enum(["discouraged", "preferred", "required"]);
/** The WebAuthn request options the Link's `presenceChallenge` sends (W3C WebAuthn L3, PublicKeyCredentialRequestOptionsJSON). */
const RequestOptionsShape = z.object({
  challenge: z.string().min(1),
  timeout: z.number().optional(),
  rpId: z.string().optional(),
  allowCredentials: z.array(DescriptorSchema).optional(),
  userVerification: UserVerificationSchema.optional(),
});
const RequestOptionsSchema = z.custom<PublicKeyCredentialRequestOptionsJSON>(
  (v) => RequestOptionsShape.safeParse(v).success,
  "The Link sent passkey options this window does not understand.",
);
/** The WebAuthn creation options of `passkeyRegistrationOptions` (PublicKeyCredentialCreationOptionsJSON). */
const CreationOptionsShape = z.object({
  rp: z.object({ name: z.string(), id: z.string().optional() }),
  user: z.object({ id: z.string(), name: z.string(), displayName: z.string() }),
  challenge: z.string().min(1),
  pubKeyCredParams: z.array(z.object({ alg: z.number(), type: z.literal("public-key") })),
  timeout: z.number().optional(),
  excludeCredentials: z.array(DescriptorSchema).optional(),
  authenticatorSelection: z
    .object({
      authenticatorAttachment: z.enum(["platform", "cross-platform"]).optional(),
      residentKey: z.enum(["discouraged", "preferred", "required"]).optional(),
      requireResidentKey: z.boolean().optional(),
      userVerification: UserVerificationSchema.optional(),
    })
    .optional(),
  attestation: z.enum(["none", "indirect", "direct", "enterprise"]).optional(),
});
const CreationOptionsSchema = z.custom<PublicKeyCredentialCreationOptionsJSON>(
  (v) => CreationOptionsShape.safeParse(v).success,
  "The Link sent passkey options this window does not understand.",
);
/** What the browser's answer becomes on the wire: plain JSON. */
const JsonRecordSchema = z.record(z.string(), z.unknown());

function browserAnswer(answer: unknown): Record<string, unknown> {
  return JsonRecordSchema.parse(JSON.parse(JSON.stringify(answer)));
}

/** A WebAuthn failure in words: the person cancelled, or the browser could not. */
function passkeyFailure(err: unknown): LinkError {
  const name = err instanceof Error ? err.name : "";
  if (name === "NotAllowedError" || name === "AbortError")
    return new LinkError(
      "presence_failed",
      "The passkey was not used (cancelled or timed out). Try again, or use another proof.",
      { cause: err },
    );
  return new LinkError(
    "presence_failed",
    `This browser could not use a passkey: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}

/**
 * A passkey proof for `call`: a challenge bound to it from the Link, the browser's assertion (user
 * verification required), ready to send as `presence`. Throws LinkError `presence_failed` when the
 * person cancels or the browser cannot.
 */
export async function passkeyProof(api: LinkApi, call: ProvenCall): Promise<PresenceProof> {
  const challenge = await api.presenceChallenge(call);
  let answer: unknown;
  try {
    answer = await startAuthentication({ optionsJSON: RequestOptionsSchema.parse(challenge.options) });
  } catch (err) {
    throw passkeyFailure(err);
  }
  return { method: "passkey", challengeId: challenge.challengeId, response: browserAnswer(answer) };
}

/**
 * Registers a new passkey: options from the Link, the browser's new credential, then
 * `passkeyRegister` with `presence` (the passphrase or PIN). Throws LinkError on refusal or cancel.
 */
export async function registerPasskey(api: LinkApi, name: string, presence: PresenceProof): Promise<void> {
  const { challengeId, options } = await api.passkeyRegistrationOptions({});
  let answer: unknown;
  try {
    answer = await startRegistration({ optionsJSON: CreationOptionsSchema.parse(options) });
  } catch (err) {
    throw passkeyFailure(err);
  }
  await api.passkeyRegister({ challengeId, response: browserAnswer(answer), name, presence });
}

/** The state of one proof step: what is offered, what was typed, and which proof was tried last. */
export interface ProofStep {
  /** True when the Link wants a proof for widening calls now (false before a vault exists to check one). */
  needed: boolean;
  offered: PresenceMethod[];
  /** Showing the step (after the action's own dialog). */
  asking: boolean;
  ask: () => void;
  back: () => void;
  pin: string;
  setPin: (v: string) => void;
  secret: string;
  setSecret: (v: string) => void;
  /** The proof typed into the step; throws LinkError `presence_required` with a sentence when nothing was typed. */
  typed: () => PresenceProof;
  /** A passkey proof for `call`. */
  passkey: (call: ProvenCall) => Promise<PresenceProof>;
  /** Clears what was typed (after each try, good or bad). */
  clear: () => void;
  /** The error to show for a failed try: a wrong PIN says how many tries are left. */
  describe: (error: UiError | null) => UiError | null;
}

/** One proof step for a dialog; `only` as in `offeredProofs`. */
export function useProofStep(only?: readonly PresenceMethod[]): ProofStep {
  const api = useLinkApi();
  const { vault } = useLinkStatus();
  const offered = useMemo(() => offeredProofs(vault, only), [vault, only]);
  const [asking, setAsking] = useState(false);
  const [pin, setPin] = useState("");
  const [secret, setSecret] = useState("");
  const [tried, setTried] = useState<PresenceMethod | null>(null);
  const typedMethod = offered.find((m) => m !== "passkey") ?? null;
  const clear = useCallback(() => {
    setPin("");
    setSecret("");
  }, []);
  return {
    needed: vault.proofs.length > 0,
    offered,
    asking,
    ask: () => setAsking(true),
    back: () => {
      clear();
      setAsking(false);
    },
    pin,
    setPin,
    secret,
    setSecret,
    typed(): PresenceProof {
      setTried(typedMethod);
      if (typedMethod === "pin" && pin !== "") return { method: "pin", pin };
      if (typedMethod === "passphrase" && secret !== "") return { method: "passphrase", passphrase: secret };
      if (typedMethod === "password" && secret !== "") return { method: "password", password: secret };
      if (typedMethod === null)
        throw new LinkError(
          "presence_required",
          offered.includes("passkey")
            ? "Use your passkey to confirm."
            : "Piper Link has no way to check it is you here. Set an approval PIN or register a passkey in Settings.",
        );
      throw new LinkError("presence_required", `Enter your ${proofNoun(typedMethod)} to confirm.`);
    },
    async passkey(call: ProvenCall): Promise<PresenceProof> {
      setTried("passkey");
      return passkeyProof(api, call);
    },
    clear,
    describe(error: UiError | null): UiError | null {
      if (error === null) return null;
      if (error.code === "presence_failed" && tried === "pin") {
        // The Link counts the tries; its own sentence says how many are left when it has one.
        if (error.message.startsWith("Wrong PIN")) return error;
        const left = Math.max(0, vault.pinTriesAllowed - vault.pinFailures);
        return {
          code: error.code,
          message: `Wrong PIN — ${left} ${left === 1 ? "try" : "tries"} left before Piper Link locks and wants your passphrase.`,
        };
      }
      if (error.code === "presence_failed" && (tried === "passphrase" || tried === "password"))
        return { code: error.code, message: `Wrong ${proofNoun(tried)}. ${error.message}` };
      return error;
    },
  };
}

function proofNoun(m: PresenceMethod): string {
  return {
    pin: "approval PIN",
    "pin-mac": "approval PIN",
    passphrase: "Piper Link passphrase",
    password: "account password",
    passkey: "passkey",
  }[m];
}

/**
 * The fields of the proof step: the PIN (focused: typing it and Enter confirms), a passkey button,
 * the account password or the passphrase. `onPasskey` runs the passkey ceremony for the caller's call.
 * `why` says what is being confirmed ("Approve OPENAI_API_KEY for Claude Code").
 */
export function ProofFields({
  id,
  step,
  why,
  onPasskey,
  busy,
}: {
  id: string;
  step: ProofStep;
  why: string;
  onPasskey: () => void;
  busy: boolean;
}) {
  const desktop = useDesktop();
  const typed = step.offered.find((m) => m !== "passkey") ?? null;
  return (
    <div data-testid="proof-step">
      <p>
        <strong>{why}</strong>
      </p>
      <p className={ui.hint}>Piper Link asks for this so that a program running as you cannot say yes in your place.</p>
      {typed === "pin" ? (
        <Field label="Approval PIN" id={`${id}-pin`} hint="The digits you chose for approvals.">
          <input
            id={`${id}-pin`}
            className={ui.input}
            type="password"
            inputMode="numeric"
            autoComplete="off"
            autoFocus
            value={step.pin}
            onChange={(e) => step.setPin(e.target.value.replace(/\D/g, ""))}
            aria-describedby={`${id}-pin-hint`}
            maxLength={32}
          />
        </Field>
      ) : null}
      {typed === "password" || typed === "passphrase" ? (
        <Field
          label={typed === "password" ? "Account password" : "Piper Link passphrase"}
          id={`${id}-secret`}
          hint={
            typed === "password" ? "Checked by your team’s authority." : "The passphrase you unlock Piper Link with."
          }
        >
          <input
            id={`${id}-secret`}
            className={ui.input}
            type="password"
            autoComplete={typed === "password" ? "current-password" : "off"}
            autoFocus
            value={step.secret}
            onChange={(e) => step.setSecret(e.target.value)}
            aria-describedby={`${id}-secret-hint`}
          />
        </Field>
      ) : null}
      {step.offered.includes("passkey") ? (
        <p>
          <Button icon={Fingerprint} onClick={onPasskey} busy={busy} autoFocus={typed === null}>
            {typed === null ? "Use your passkey" : "Use a passkey instead"}
          </Button>
          {desktop ? (
            <span className={ui.hint}>
              {" "}
              If this window cannot show the passkey prompt, approve in the browser window (run piper-link ui).
            </span>
          ) : null}
        </p>
      ) : null}
      {step.offered.length === 0 ? (
        <p className={ui.hint}>
          No proof is available here: set an approval PIN or register a passkey in Settings, or approve at a terminal
          with piper-link approve.
        </p>
      ) : null}
    </div>
  );
}

/** Gives the proof for one exact call (a typed proof, or a passkey ceremony bound to the call). */
export type Prover = (call: ProvenCall) => Promise<PresenceProof>;

/** `{ presence }` when there is a proof, else nothing: spread into a call's params. */
export function withPresence(presence: PresenceProof | undefined): { presence?: PresenceProof } {
  return presence === undefined ? {} : { presence };
}

/** True for the Link's answer "this needs a proof of presence" (the window then asks for one). */
export function isPresenceRequired(err: unknown): boolean {
  return toUiError(err).code === "presence_required";
}

/**
 * Runs a call that needs a proof only when it widens something (a grant's limits, a secret's
 * hosts, a setting): first without one; when the Link answers `presence_required`, `step.ask()`
 * and the caller's dialog shows the proof step. Returns true when the call went through.
 */
export async function tryWithoutProof(
  step: ProofStep,
  prove: Prover | null,
  call: ProvenCall,
  run: (presence: PresenceProof | undefined) => Promise<unknown>,
): Promise<boolean> {
  const presence = prove === null ? undefined : await prove(call);
  try {
    await run(presence);
    return true;
  } catch (err) {
    if (prove === null && isPresenceRequired(err)) {
      step.ask();
      return false;
    }
    throw err;
  }
}

/**
 * A dialog that only asks for the proof of one call (turning notifications off, keeping a grant
 * approved before proofs existed, a longer idle lock): `run(presence)` makes the call; `onDone`
 * after it succeeded. A wrong PIN leaves the dialog open with the tries left.
 */
export function ProofDialog({
  title,
  why,
  call,
  run,
  onClose,
  onDone,
  only,
}: {
  title: string;
  why: string;
  call: ProvenCall;
  run: (presence: PresenceProof) => Promise<unknown>;
  onClose: () => void;
  onDone: () => void;
  only?: readonly PresenceMethod[];
}) {
  const api = useLinkApi();
  const id = useId();
  const step = useProofStep(only);
  const action = useLinkAction();
  async function confirm(prove: Prover): Promise<void> {
    const done = await action.run("proof", async () => run(await prove(call)));
    step.clear();
    if (done) onDone();
  }
  return (
    <Dialog
      title={title}
      onClose={onClose}
      onSubmit={() => void confirm(() => Promise.resolve(step.typed()))}
      error={step.describe(action.error)}
      actions={
        <>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" type="submit" busy={action.busy !== null}>
            Confirm
          </Button>
        </>
      }
    >
      <ProofFields
        id={id}
        step={step}
        why={why}
        busy={action.busy !== null}
        onPasskey={() => void confirm((c) => passkeyProof(api, c))}
      />
    </Dialog>
  );
}

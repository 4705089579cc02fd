/**
 * The presence gate (DESIGN.md section 9): every widening control call passes through `require`,
 * which checks the proof that travels with it — the approval PIN or the passphrase against the
 * vault's in-memory verifiers, a passkey assertion against a challenge bound to this exact call —
 * and answers with the signer that proves the same to the authority: a MAC under the embedded
 * authority's per-start approval key, or, for a team authority, the account password the person
 * typed (a PIN held in one Link's memory proves nothing to a remote service, so the team authority
 * checks its own proof). A proof is bound to the call it travels with: the action string covers the
 * method and every term (presenceAction in src/shared/presence.ts).
 */
import type { ControlMethod } from "../../../shared/control.js";
import { LinkError } from "../../../shared/errors.js";
import { randomBytes } from "node:crypto";
import {
  presenceAction,
  PresenceProofSchema,
  type PinChallenge,
  type PresenceProof,
  type VaultStatus,
} from "../../../shared/presence.js";
import { lockedError, type Vault } from "../vault/vault.js";
import { signLinkPresence, type PresenceSigner } from "../authority/authority-client.js";

/** Proves a checked action to the authority: `action` is the authority's own action string for the call it makes. */
export type AuthoritySigner = PresenceSigner;

/** Which authority enforces the decision, as the gate needs to know it. */
export type PresenceAuthority = { kind: "embedded"; approvalKey: () => Buffer | null } | { kind: "remote" } | null;

/** The passkey checks the gate needs (core/presence/passkeys.ts provides them). */
export interface PasskeyVerifier {
  /** Resolves (with whatever it checked) when the assertion is good for `action`; throws `presence_failed` otherwise. */
  verify(challengeId: string, action: string, response: Record<string, unknown>): Promise<unknown>;
}

export interface PresenceGateDeps {
  vault: Vault;
  authority: () => PresenceAuthority;
  passkeys: PasskeyVerifier;
  now: () => number;
  /** Throws when this process's memory is open to other programs (traced, dumpable): a proof must not go in then. */
  memoryCheck?: () => Promise<void>;
}

export interface PresenceGate {
  /**
   * Checks the proof in `params.presence` for `method` with `params`. Resolves with the signer for
   * the authority; throws `presence_required` (no proof), `presence_failed` (a wrong one, or one this
   * Link cannot accept now), `rate_limited` (wrong PINs: wait), or `locked`.
   */
  require(
    method: ControlMethod,
    params: Record<string, unknown>,
    accept?: readonly PresenceProof["method"][],
  ): Promise<AuthoritySigner>;
  /** The proofs this Link accepts now, in the order a window offers them. */
  proofs(): VaultStatus["proofs"];
  /**
   * The signer for a call that narrows (fewer hosts): the Link decided no proof is needed, and the
   * embedded authority takes its MAC. A team authority still wants its own proof: the account
   * password, when the call carries one, else the signer refuses with `presence_required`.
   */
  narrowing(params: Record<string, unknown>): AuthoritySigner;
  /** A `pin-mac` challenge for `action` (presenceAction of the call it will prove). Throws `locked`, `presence_failed` (no PIN set). */
  pinChallenge(action: string): PinChallenge;
}

/** How long a PIN challenge may be answered, in ms (a person reading the prompt and typing). */
const PIN_CHALLENGE_TTL_MS = 2 * 60_000;
/** PIN challenges kept at once; more are not needed by one person, and fewer bound what a caller can pile up. */
const PIN_CHALLENGES_MAX = 32;

export const PRESENCE_REQUIRED_MESSAGE =
  "This needs you: approve in the Piper Link window (it asks for your PIN), or run the command at a terminal, where it asks for your PIN.";

export function createPresenceGate(deps: PresenceGateDeps): PresenceGate {
  const { vault, now } = deps;

  /** PIN challenges in flight: single-use, bound to one action, PIN_CHALLENGE_TTL_MS; at most PIN_CHALLENGES_MAX (the oldest goes). */
  const pinChallenges = new Map<string, { action: string; nonce: string; expiresAt: number }>();

  function proofs(): VaultStatus["proofs"] {
    if (vault.state !== "unlocked") return [];
    if (deps.authority()?.kind === "remote") return ["password"];
    const list: VaultStatus["proofs"] = [];
    if (vault.pinSet) list.push("pin");
    if (vault.passkeys.length > 0) list.push("passkey");
    if (!vault.unattended) list.push("passphrase");
    return list;
  }

  async function check(proof: PresenceProof, action: string): Promise<void> {
    switch (proof.method) {
      case "pin":
        return vault.checkPin(proof.pin);
      case "passphrase":
        return vault.checkPassphrase(proof.passphrase);
      case "passkey": {
        if (vault.passkeys.length === 0)
          throw new LinkError("presence_failed", "No passkey is registered with this Piper Link; use your PIN.");
        await deps.passkeys.verify(proof.challengeId, action, proof.response);
        vault.touch();
        return;
      }
      case "password":
        // Checked by the team authority itself, below; meaningless to the embedded one.
        return;
      case "pin-mac": {
        const challenge = pinChallenges.get(proof.challengeId);
        // Used up by any attempt, right or wrong.
        pinChallenges.delete(proof.challengeId);
        if (challenge === undefined || challenge.expiresAt < now())
          throw new LinkError("presence_failed", "That PIN prompt expired or was already used; try again.");
        if (challenge.action !== action)
          throw new LinkError("presence_failed", "That PIN was given for another request or other terms.");
        return vault.checkPinMac(challenge.nonce, action, proof.mac);
      }
    }
  }

  function embeddedSigner(approvalKey: () => Buffer | null): AuthoritySigner {
    return (action) => {
      const key = approvalKey();
      if (key === null)
        throw new LinkError("authority_unavailable", "The embedded authority is restarting; try again in a moment.");
      return signLinkPresence(key, action, now());
    };
  }

  return {
    proofs,
    pinChallenge(action) {
      if (vault.state !== "unlocked") throw lockedError();
      const kdf = vault.pinParams();
      for (const [id, c] of pinChallenges) if (c.expiresAt < now()) pinChallenges.delete(id);
      if (pinChallenges.size >= PIN_CHALLENGES_MAX) pinChallenges.delete(pinChallenges.keys().next().value ?? "");
      const challengeId = `pc_${randomBytes(16).toString("base64url")}`;
      const nonce = randomBytes(24).toString("base64url");
      const expiresAt = now() + PIN_CHALLENGE_TTL_MS;
      pinChallenges.set(challengeId, { action, nonce, expiresAt });
      return {
        challengeId,
        nonce,
        expiresAt: new Date(expiresAt).toISOString(),
        kdf: { N: kdf.N, r: kdf.r, p: kdf.p, salt: kdf.salt },
      };
    },
    narrowing(params) {
      const authority = deps.authority();
      if (authority?.kind === "embedded") return embeddedSigner(authority.approvalKey);
      const proof = PresenceProofSchema.safeParse(params["presence"]);
      if (proof.success && proof.data.method === "password") {
        const password = proof.data.password;
        return () => ({ kind: "password", password });
      }
      return () => {
        throw new LinkError(
          "presence_required",
          "Your team's authority checks this change itself: enter your account password.",
        );
      };
    },
    async require(method, params, accept) {
      if (vault.state !== "unlocked") throw lockedError();
      const raw = params["presence"];
      if (raw === undefined) throw new LinkError("presence_required", PRESENCE_REQUIRED_MESSAGE);
      const parsed = PresenceProofSchema.safeParse(raw);
      if (!parsed.success) throw new LinkError("bad_request", "The proof of presence is malformed.");
      const proof = parsed.data;
      if (accept !== undefined && !accept.includes(proof.method))
        throw new LinkError("presence_failed", `This needs your ${accept.join(" or ")}.`);
      const authority = deps.authority();
      if (authority?.kind === "remote" && proof.method !== "password") {
        throw new LinkError(
          "presence_failed",
          "Your team's authority checks approvals itself: enter your account password.",
        );
      }
      if (authority?.kind !== "remote" && proof.method === "password") {
        throw new LinkError(
          "presence_failed",
          "The account password proves nothing to this Link's own authority; use your PIN, a passkey or your passphrase.",
        );
      }
      await deps.memoryCheck?.();
      await check(proof, presenceAction(method, params));
      if (authority === null)
        return () => {
          throw new LinkError("authority_unavailable", "No authority is configured.");
        };
      if (authority.kind === "remote") {
        if (proof.method !== "password") throw new LinkError("presence_failed", "Enter your account password.");
        const password = proof.password;
        return () => ({ kind: "password", password });
      }
      return embeddedSigner(authority.approvalKey);
    },
  };
}

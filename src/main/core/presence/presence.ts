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
import { createHmac, randomBytes } from "node:crypto";
import type { ControlMethod } from "../../../shared/control.js";
import { LinkError } from "../../../shared/errors.js";
import { presenceAction, presenceMessage, PresenceProofSchema, type AuthorityPresence, type PresenceProof, type VaultStatus } from "../../../shared/presence.js";
import type { Vault } from "../vault/vault.js";

/** Proves a checked action to the authority: `action` is the authority's own action string for the call it makes. */
export type AuthoritySigner = (action: string) => AuthorityPresence;

/** Which authority enforces the decision, as the gate needs to know it. */
export type PresenceAuthority = { kind: "embedded"; approvalKey: () => Buffer | null } | { kind: "remote" } | null;

/** The passkey checks the gate needs (core/presence/passkeys.ts provides them). */
export interface PasskeyVerifier {
  verify(challengeId: string, action: string, response: Record<string, unknown>): Promise<void>;
}

export interface PresenceGateDeps {
  vault: Vault;
  authority: () => PresenceAuthority;
  passkeys: () => PasskeyVerifier | null;
  now: () => number;
}

export interface PresenceGate {
  /**
   * Checks the proof in `params.presence` for `method` with `params`. Resolves with the signer for
   * the authority; throws `presence_required` (no proof), `presence_failed` (a wrong one, or one this
   * Link cannot accept now), `rate_limited` (wrong PINs: wait), or `locked`.
   */
  require(method: ControlMethod, params: Record<string, unknown>, accept?: readonly PresenceProof["method"][]): Promise<AuthoritySigner>;
  /** The proofs this Link accepts now, in the order a window offers them. */
  proofs(): VaultStatus["proofs"];
}

export const PRESENCE_REQUIRED_MESSAGE =
  "This needs you: approve in the Piper Link window (it asks for your PIN), or run the command at a terminal, where it asks for your PIN.";

/** The embedded authority's form: HMAC-SHA256(approval key, presenceMessage(action, nonce, at)), base64url. */
export function linkMac(approvalKey: Buffer, action: string, now: number): AuthorityPresence {
  const nonce = randomBytes(18).toString("base64url");
  const mac = createHmac("sha256", approvalKey).update(presenceMessage(action, nonce, now)).digest("base64url");
  return { kind: "link-mac", nonce, at: now, mac };
}

export function createPresenceGate(deps: PresenceGateDeps): PresenceGate {
  const { vault, now } = deps;

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
        const passkeys = deps.passkeys();
        if (passkeys === null || vault.passkeys.length === 0) throw new LinkError("presence_failed", "No passkey is registered with this Piper Link; use your PIN.");
        await passkeys.verify(proof.challengeId, action, proof.response);
        vault.touch();
        return;
      }
      case "password":
        // Checked by the team authority itself, below; meaningless to the embedded one.
        return;
    }
  }

  return {
    proofs,
    async require(method, params, accept) {
      if (vault.state !== "unlocked") throw new LinkError("locked", "Piper Link is locked. Unlock it in its window or with `piper-link unlock` at a terminal, then try again.");
      const raw = params["presence"];
      if (raw === undefined) throw new LinkError("presence_required", PRESENCE_REQUIRED_MESSAGE);
      const parsed = PresenceProofSchema.safeParse(raw);
      if (!parsed.success) throw new LinkError("bad_request", "The proof of presence is malformed.");
      const proof = parsed.data;
      if (accept !== undefined && !accept.includes(proof.method)) throw new LinkError("presence_failed", `This needs your ${accept.join(" or ")}.`);
      const authority = deps.authority();
      if (authority?.kind === "remote" && proof.method !== "password") {
        throw new LinkError("presence_failed", "Your team's authority checks approvals itself: enter your account password.");
      }
      if (authority?.kind !== "remote" && proof.method === "password") {
        throw new LinkError("presence_failed", "The account password proves nothing to this Link's own authority; use your PIN, a passkey or your passphrase.");
      }
      await check(proof, presenceAction(method, params));
      if (authority === null) return () => { throw new LinkError("authority_unavailable", "No authority is configured."); };
      if (authority.kind === "remote") {
        if (proof.method !== "password") throw new LinkError("presence_failed", "Enter your account password.");
        const password = proof.password;
        return () => ({ kind: "password", password });
      }
      return (action) => {
        const key = authority.approvalKey();
        if (key === null) throw new LinkError("authority_unavailable", "The embedded authority is restarting; try again in a moment.");
        return linkMac(key, action, now());
      };
    },
  };
}

/**
 * Proofs of presence for authority tests: the embedded authority's `link-mac` form, made exactly as
 * the Link makes it (`signLinkPresence` over `authorityPresenceAction`), with a test's own approval key.
 */
import { randomBytes } from "node:crypto";
import type { ApproveBody } from "../src/shared/authority.js";
import { authorityPresenceAction } from "../src/shared/authority-presence.js";
import type { AuthorityKeys } from "../src/shared/authority-process.js";
import { newDataKey } from "../src/server/crypto.js";
import { signLinkPresence, type PresenceSigner } from "../src/main/core/authority/authority-client.js";

/** A new approval key (32 random bytes). */
export function newApprovalKey(): Buffer {
  return randomBytes(32);
}

/** Fresh keys for `--keys-on-stdin`: one data key and an approval key. */
export function newAuthorityKeys(): { keys: AuthorityKeys; approvalKey: Buffer } {
  const approvalKey = newApprovalKey();
  return { keys: { dataKeys: `k1:${newDataKey()}`, approvalKey: approvalKey.toString("base64url") }, approvalKey };
}

/** The signer the Link passes to authority-client's widening methods. */
export function linkSigner(approvalKey: Buffer): PresenceSigner {
  return (action) => signLinkPresence(approvalKey, action);
}

/** An approve body with a valid `link-mac` presence for `requestId` (for raw HTTP calls). */
export function presentApprove(
  approvalKey: Buffer,
  requestId: string,
  body: ApproveBody,
): ApproveBody & { presence: ReturnType<PresenceSigner> } {
  return {
    ...body,
    presence: signLinkPresence(approvalKey, authorityPresenceAction("approveRequest", { requestId, ...body })),
  };
}

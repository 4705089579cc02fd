/**
 * The exact action a proof of presence covers at the authority, one function for both sides: the
 * authority recomputes it from the route and body it received, the Link's client computes it from
 * what it is about to send, and a `link-mac` is valid only when both strings are equal. Each
 * widening route names its operation and every term it changes (DESIGN.md section 9: "terms" means
 * everything the grant holds, the secret's name included), so a proof for one request, grant,
 * secret or set of terms is worthless for another. Pure: no I/O, no `node:` modules.
 */
import { ApproveBodySchema, type ApproveBody, type SecretHosts } from "./authority.js";
import type { GrantPolicy } from "./grant-terms.js";
import { presenceAction } from "./presence.js";

/** The widening routes and the terms each one's proof covers. */
export interface AuthorityPresenceTerms {
  /** Approving request `requestId` with exactly these terms (scope, binding, mode with destinations, policy, secret). */
  approveRequest: { requestId: string } & ApproveBody;
  /** Replacing grant `grantId`'s limits with `policy` (null: none). */
  updateGrantPolicy: { grantId: string; policy: GrantPolicy | null };
  /** Setting secret `name` together with its hosts (null: any host). A set without `hosts` widens nothing and needs no proof. */
  setSecret: { name: string; hosts: SecretHosts | null };
  /** Replacing secret `name`'s hosts (null: any host). */
  setSecretHosts: { name: string; hosts: SecretHosts | null };
  /** Keeping grants approved before proofs existed. */
  keepLegacyGrants: { grantIds: string[] };
}
export type AuthorityPresenceOp = keyof AuthorityPresenceTerms;

/**
 * The action string for `op` with `terms`: `presenceAction("authority.<op>", terms)` after putting
 * the terms in the one form both sides see: an approval's body as the route's schema reads it
 * (unknown keys dropped), and grant ids sorted and without repeats (the set is what is kept).
 */
export function authorityPresenceAction<O extends AuthorityPresenceOp>(
  op: O,
  terms: AuthorityPresenceTerms[O],
): string {
  return presenceAction(`authority.${op}`, normalized(terms));
}

function normalized(terms: AuthorityPresenceTerms[AuthorityPresenceOp]): Record<string, unknown> {
  if ("requestId" in terms) {
    const { requestId, ...rest } = terms;
    // A caller that spread a control call's params may have left the Link's own proof in them: it is no term.
    const body = Object.fromEntries(Object.entries(rest).filter(([key]) => key !== "presence"));
    const parsed = ApproveBodySchema.safeParse(body);
    return { requestId, ...(parsed.success ? parsed.data : body) };
  }
  if ("grantIds" in terms) return { grantIds: [...new Set(terms.grantIds)].sort() };
  return { ...terms };
}

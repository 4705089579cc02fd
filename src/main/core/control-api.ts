/**
 * The LinkApi the window and the CLI use (DESIGN.md section 3: the control channel is the only
 * place where approve, deny and revoke exist), assembled from the core's parts. Every change that
 * can alter what a grant serves drops the grant cache before and after it.
 */
import {
  controlAction,
  uiCodeAddress,
  type ApproveItemResult,
  type ControlEvent,
  type LinkApi,
  type LinkStatus,
} from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import type { AuthorityConnection } from "./authority/connection.js";
import type { GrantCache } from "./authority/grant-cache.js";
import { requireRequesterAlive } from "./authority/local-liveness.js";
import type { InstanceContext } from "./account/instance-context.js";
import type { SignIn } from "./account/sign-in.js";
import type { UiCodes } from "./loopback/ui-codes.js";
import type { SettingsStore } from "./runtime/settings.js";
import { withoutPresence, type LockReason } from "../../shared/presence.js";
import type { PresenceGate } from "./presence/presence.js";
import { lockedError, type Vault } from "./vault/vault.js";
import type { Passkeys } from "./presence/passkeys.js";

export interface ControlApiDeps {
  connection: AuthorityConnection;
  cache: GrantCache;
  context: InstanceContext;
  signIn: SignIn;
  settings: SettingsStore;
  /** Single-use codes for the browser UI (`uiLoginCode`); the control channel redeems them. */
  uiCodes: UiCodes;
  status: () => LinkStatus;
  emit: (event: ControlEvent) => void;
  /** Stops the Link after the reply to `shutdown` has been sent. */
  shutdown: () => void;
  vault: Vault;
  presence: PresenceGate;
  passkeys: Passkeys;
  unlock(passphrase: string): Promise<LinkStatus>;
  create(passphrase: string, pin: string | undefined): Promise<LinkStatus>;
  lock(reason: LockReason): LinkStatus;
  /** The count of legacy grants may have changed: read it again for the status. */
  legacyChanged(): Promise<void>;
}

/** True when every host of `next` is already allowed by `current` (null: any host). Narrowing needs no proof. */
function hostsNarrow(current: readonly string[] | null, next: readonly string[] | null): boolean {
  if (current === null) return true;
  if (next === null) return false;
  const allowed = new Set(current.map((h) => h.toLowerCase()));
  return next.every((h) => allowed.has(h.toLowerCase()));
}

export function createControlApi(deps: ControlApiDeps): LinkApi {
  const { connection, cache, context, signIn, settings, status, emit, presence, vault } = deps;
  const authority = () => connection.require();

  /** Runs a change through the authority, dropping cached grants before and after it. */
  async function changing<T>(what: string, op: () => Promise<T>): Promise<T> {
    cache.clear(what);
    try {
      return await op();
    } finally {
      cache.clear(what);
    }
  }

  return {
    status: () => Promise.resolve(status()),
    async setInstanceId({ instanceId }) {
      // A Link signed in to an account refuses an instance that is not that account's (issue 13
      // item 3). Without a sign-in (no authority, or the embedded authority's local development
      // token) this developer command takes the ID as given.
      const client = connection.client;
      if (client !== null && signIn.account === "oauth" && !(await client.instanceIsMine(instanceId))) {
        throw new LinkError(
          "not_found",
          `Instance ${instanceId} does not belong to the account this Piper Link is signed in to; nothing was stored.`,
        );
      }
      await context.store(instanceId);
      return status();
    },
    async logout() {
      await signIn.signOut();
      // Signing out ends this machine's sign-in: the keys leave memory too, and the next person at
      // the keyboard unlocks before signing in again.
      if (vault.state === "unlocked") deps.lock("signed_out");
      return status();
    },
    loginStart: ({ device }) => signIn.start(device),
    async loginWait({ loginId, timeoutMs }) {
      await signIn.wait(loginId, timeoutMs);
      emit({ kind: "status", status: status() });
      return status();
    },
    async devSignIn({ name }) {
      await signIn.devSignIn(name);
      return status();
    },
    listRequests: ({ status: which }) => authority().listRequests(which),
    async approveRequest(params) {
      const signer = await presence.require("approveRequest", params);
      const { requestId, ...body } = withoutPresence(params);
      // A "yes" goes only to the program the person saw: never to a newcomer after it exited.
      const client = authority();
      const request = (await client.listRequests("pending")).find((r) => r.id === requestId);
      if (request !== undefined) await requireRequesterAlive(client, request, body);
      return client.approve(requestId, body, signer);
    },
    async approveRequests(params) {
      // One proof for the whole card: it covers every item and the one set of terms.
      const signer = await presence.require("approveRequests", params);
      const { items, ...terms } = withoutPresence(params);
      const client = authority();
      const pending = new Map((await client.listRequests("pending")).map((r) => [r.id, r]));
      const results: ApproveItemResult[] = [];
      // One by one, in order: each item is its own decision at the authority, so one failing
      // (its secret is missing, its program exited) leaves the others approved.
      for (const { requestId, secretName } of items) {
        try {
          const request = pending.get(requestId);
          if (request !== undefined) await requireRequesterAlive(client, request, terms);
          const grant = await client.approve(
            requestId,
            { ...terms, ...(secretName !== undefined ? { secretName } : {}) },
            signer,
          );
          results.push({ requestId, ok: true, grant });
        } catch (err) {
          if (!(err instanceof LinkError)) throw err;
          results.push({ requestId, ok: false, error: { code: err.code, message: err.message } });
        }
      }
      return { results };
    },
    denyRequest: ({ requestId }) => authority().deny(requestId),
    listGrants: ({ all }) => authority().listGrants(all),
    revokeGrant: ({ grantId }) => changing("revoke", () => authority().revokeGrant(grantId)),
    listSecrets: () => authority().listSecrets(),
    async updateGrantPolicy(params) {
      const signer = await presence.require("updateGrantPolicy", params);
      return changing("grant limits", () => authority().updateGrantPolicy(params.grantId, params.policy, signer));
    },
    async setSecret(params) {
      const { name, value, hosts } = params;
      let signer = presence.narrowing(params);
      if (hosts !== undefined) {
        const current = (await authority().listSecrets()).find((s) => s.name === name);
        // A new secret with hosts, or hosts wider than before, adds destinations: a yes.
        if (current === undefined ? hosts === null || hosts.length > 0 : !hostsNarrow(current.hosts ?? null, hosts))
          signer = await presence.require("setSecret", params);
      }
      return changing("secret set", () => authority().setSecret(name, value, hosts, signer));
    },
    async setSecretHosts(params) {
      const { name, hosts } = params;
      const current = (await authority().listSecrets()).find((s) => s.name === name);
      const signer =
        current === undefined || !hostsNarrow(current.hosts ?? null, hosts)
          ? await presence.require("setSecretHosts", params)
          : presence.narrowing(params);
      return changing("secret hosts", () => authority().setSecretHosts(name, hosts, signer));
    },
    async deleteSecret({ name }) {
      await changing("secret deleted", () => authority().deleteSecret(name));
      return { deleted: true as const };
    },
    listActivity: (query) => authority().audit(query),
    getSettings: () => Promise.resolve(settings.get()),
    async updateSettings(params) {
      const change = withoutPresence(params);
      // Turning notifications off hides new requests from the person: a protection turned off.
      if (change.notifications === false && settings.get().notifications)
        await presence.require("updateSettings", params);
      const next = await settings.update(change);
      emit({ kind: "settings", settings: next });
      return next;
    },
    uiLoginCode() {
      const { code, expiresAt } = deps.uiCodes.issue();
      return Promise.resolve({
        code,
        url: uiCodeAddress(status().port, code),
        expiresAt: new Date(expiresAt).toISOString(),
      });
    },
    createVault: ({ passphrase, pin }) => deps.create(passphrase, pin),
    unlock: ({ passphrase }) => deps.unlock(passphrase),
    lock: () => Promise.resolve(deps.lock("by_request")),
    async setPin(params) {
      // The first PIN of a vault unlocked from a passphrase file may be set with that passphrase:
      // whoever can read that file can already open everything (unattended is unprotected at rest).
      if (vault.unattended && !vault.pinSet && params.presence?.method === "passphrase")
        await vault.checkPassphraseUnattended(params.presence.passphrase);
      else
        await presence.require(
          "setPin",
          params,
          vault.pinSet ? ["passphrase", "passkey", "pin"] : ["passphrase", "passkey"],
        );
      await vault.setPin(params.pin);
      return status();
    },
    async setIdleLock(params) {
      if (params.minutes > vault.idleLockMinutes) await presence.require("setIdleLock", params);
      await vault.setIdleLockMinutes(params.minutes);
      return status();
    },
    async presenceChallenge({ method, params }) {
      if (vault.state !== "unlocked") throw lockedError();
      return deps.passkeys.challenge(controlAction(method, params));
    },
    pinChallenge: ({ method, params }) => Promise.resolve(presence.pinChallenge(controlAction(method, params))),
    async passkeyRegistrationOptions() {
      if (vault.state !== "unlocked") throw lockedError();
      return deps.passkeys.registrationOptions();
    },
    async passkeyRegister(params) {
      // A new passkey is a new way to say yes: it needs a proof the person already has.
      await presence.require("passkeyRegister", params, ["passphrase", "pin"]);
      await deps.passkeys.register(params.challengeId, params.response, params.name);
      return status();
    },
    listLegacyGrants: () => authority().listLegacyGrants(),
    async keepLegacyGrants(params) {
      const signer = await presence.require("keepLegacyGrants", params);
      const kept = await changing("legacy grants kept", () => authority().keepLegacyGrants(params.grantIds, signer));
      await deps.legacyChanged();
      return { kept };
    },
    shutdown() {
      // Answer first, then stop: the caller gets its reply before the socket closes.
      setImmediate(deps.shutdown);
      return Promise.resolve({ stopping: true as const });
    },
  };
}

/**
 * This machine's instance ID as the Link knows it: read from the keychain at start, changed by
 * sign-in and sign-out, and pushed to agents on change. A keychain that fails (locked, no Secret
 * Service) is retried in the background and reported in the context agents see, never a crash.
 */
import type { Logger } from "pino";
import { LinkError, LOCKED_MESSAGE, NOT_SIGNED_IN_MESSAGE } from "../../../shared/errors.js";
import type { ContextSnapshot } from "../loopback/agent-channel.js";
import type { KeychainStore } from "../runtime/keychain.js";

export interface InstanceContext {
  /** The instance ID in force, or null when nobody is signed in (or the keychain failed). */
  readonly instanceId: string | null;
  /** The keychain's last failure, cleared by the next successful read or write. */
  readonly keychainError: LinkError | null;
  /** What agents are told: ready with the instance ID, or logged out with the reason. */
  snapshot(): ContextSnapshot;
  /** Reads the instance ID from the keychain; on failure records the error and retries later. */
  load(): Promise<void>;
  /** Stores `instanceId` in the keychain, then applies it. Throws the keychain's LinkError. */
  store(instanceId: string): Promise<void>;
  /** Deletes the stored instance ID, then applies "none". */
  forget(): Promise<void>;
  /** Stops the background retry. */
  stop(): void;
  /**
   * While locked the context is empty and says so (`locked`, not "logged out"): the instance ID is
   * dropped from memory and agents are told; unlocking reads it from the keychain again.
   */
  setLocked(locked: boolean): void;
  /** Records (or clears, with null) a keychain failure that keeps the Link locked: agents and status say so. */
  setKeychainError(error: LinkError | null): void;
}

export interface InstanceContextDeps {
  keychain: KeychainStore;
  log: Logger;
  /** How often to retry a failed keychain (ms). */
  retryMs: number;
  /** The instance ID changed (null: signed out). */
  onChange(instanceId: string | null): void;
  /** A background retry finished (its outcome is in `keychainError`). */
  onRetried(): void;
}

export function createInstanceContext(deps: InstanceContextDeps): InstanceContext {
  const { keychain, log } = deps;
  let instanceId: string | null = null;
  let keychainError: LinkError | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let stopped = false;
  let locked = false;

  function apply(next: string | null): void {
    if (next === instanceId) return;
    instanceId = next;
    deps.onChange(next);
  }

  function scheduleRetry(): void {
    if (retryTimer !== null || stopped) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void load().then(() => deps.onRetried());
    }, deps.retryMs);
    retryTimer.unref();
  }

  async function load(): Promise<void> {
    if (locked) return;
    try {
      const stored = await keychain.get("instance-id");
      keychainError = null;
      apply(stored);
    } catch (err) {
      keychainError = err instanceof LinkError ? err : new LinkError("keychain_unavailable", String(err));
      log.error({ code: keychainError.code, err: keychainError.message }, "keychain read failed");
      scheduleRetry();
    }
  }

  return {
    get instanceId() {
      return instanceId;
    },
    get keychainError() {
      return keychainError;
    },
    snapshot() {
      if (locked && keychainError !== null)
        return { state: "logged_out", error: { code: keychainError.code, message: keychainError.message } };
      if (locked) return { state: "logged_out", error: { code: "locked", message: LOCKED_MESSAGE } };
      if (instanceId !== null) return { state: "ready", instanceId };
      if (keychainError !== null)
        return { state: "logged_out", error: { code: keychainError.code, message: keychainError.message } };
      return { state: "logged_out", error: { code: "not_logged_in", message: NOT_SIGNED_IN_MESSAGE } };
    },
    load,
    async store(id) {
      await keychain.set("instance-id", id);
      keychainError = null;
      apply(id);
    },
    async forget() {
      await keychain.delete("instance-id");
      apply(null);
    },
    setKeychainError(error) {
      keychainError = error;
    },
    setLocked(next) {
      const changed = next !== locked;
      locked = next;
      if (next) {
        if (retryTimer !== null) clearTimeout(retryTimer);
        retryTimer = null;
        keychainError = null;
        instanceId = null;
        // Told even when there was no instance: agents learn why nothing is served now.
        if (changed) deps.onChange(null);
      }
    },
    stop() {
      stopped = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
    },
  };
}

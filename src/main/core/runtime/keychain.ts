/**
 * The OS keychain, through `@napi-rs/keyring`. One small service: `get` returns `null` when an
 * item is absent and throws a `LinkError` only for real failures (no Secret Service, locked
 * keychain), with a message that tells the person what to do. There is no plaintext fallback; on
 * Linux the entry is pinned to the Secret Service so the non-persistent kernel keyring is never
 * used silently either.
 */
import { AsyncEntry } from "@napi-rs/keyring";
import { LinkError } from "../../../shared/errors.js";

/** The items the Link keeps in the keychain (DESIGN.md section 6). */
export type KeychainItem =
  | "instance-id"
  | "refresh-token"
  | "authority-settings"
  | "authority-data-key"
  | "authority-link-token";

export interface KeychainStore {
  readonly service: string;
  get(item: KeychainItem): Promise<string | null>;
  set(item: KeychainItem, value: string): Promise<void>;
  /** Returns true when something was deleted. */
  delete(item: KeychainItem): Promise<boolean>;
}

export interface KeychainOptions {
  /** Profile name; `default` uses service `piper-link`, others `piper-link.<profile>`. */
  profile: string;
  /** A keychain that waits on an unlock prompt nobody answers fails after this long. */
  timeoutMs?: number;
  platform?: NodeJS.Platform;
}

export function keychainService(profile: string): string {
  return profile === "default" ? "piper-link" : `piper-link.${profile}`;
}

function advice(platform: NodeJS.Platform): string {
  if (platform === "darwin") return "Unlock the login keychain in Keychain Access and try again.";
  if (platform === "win32") return "Check that Windows Credential Manager is available for this user.";
  return (
    "Piper Link needs a Secret Service keyring (GNOME Keyring or KWallet) on the session D-Bus. " +
    "Install and start one (e.g. `apt-get install gnome-keyring dbus-x11`), unlock it, and try again. " +
    "Over SSH, run inside `dbus-run-session` with gnome-keyring-daemon unlocked."
  );
}

function toLinkError(err: unknown, platform: NodeJS.Platform, action: string): LinkError {
  if (err instanceof LinkError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const locked = /locked|prompt|dismissed|cancel/i.test(text) || (err instanceof Error && err.name === "AbortError");
  if (locked) {
    return new LinkError(
      "keychain_locked",
      `The keychain is locked or waiting for an unlock prompt, so Piper Link could not ${action}. Unlock it and try again. (${text})`,
      { cause: err },
    );
  }
  return new LinkError(
    "keychain_unavailable",
    `The keychain is not available, so Piper Link could not ${action}. ${advice(platform)} (${text})`,
    { cause: err },
  );
}

export function createKeychainStore(options: KeychainOptions): KeychainStore {
  const service = keychainService(options.profile);
  const platform = options.platform ?? process.platform;
  const timeoutMs = options.timeoutMs ?? 15_000;

  async function withEntry<T>(item: KeychainItem, action: string, op: (e: AsyncEntry, s: AbortSignal) => Promise<T>): Promise<T> {
    try {
      // The constructor connects to the store and throws synchronously when there is none.
      const entry = new AsyncEntry(service, item, { linux: { store: "secret-service" } });
      return await op(entry, AbortSignal.timeout(timeoutMs));
    } catch (err) {
      throw toLinkError(err, platform, action);
    }
  }

  return {
    service,
    get: (item) => withEntry(item, `read ${item}`, (e, signal) => e.getPassword(signal)),
    set: (item, value) => withEntry(item, `store ${item}`, (e, signal) => e.setPassword(value, signal)),
    delete: (item) => withEntry(item, `delete ${item}`, (e, signal) => e.deletePassword(signal)),
  };
}

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

/**
 * The keyring library's error kinds. @napi-rs/keyring rejects with napi code `GenericFailure` for
 * every failure; the kind is the keyring-rs `Error` variant, which it reports as the message's
 * leading label (its `Display`): `NoStorageAccess` ("Couldn't access platform secure storage", the
 * Secret Service's Locked / Prompt / NoResult errors) and `PlatformFailure` ("Platform failure", no
 * bus, no service, no reply). The label is matched, never words elsewhere in the message or in our
 * own advice (issue 16 item 4).
 */
export type KeyringErrorKind = "no_storage_access" | "platform_failure" | "bounded_out" | "other";

export function keyringErrorKind(err: unknown): KeyringErrorKind {
  if (err instanceof KeychainTimeout) return "bounded_out";
  const message = err instanceof Error ? err.message : "";
  if (message.startsWith("Couldn't access platform secure storage")) return "no_storage_access";
  if (message.startsWith("Platform failure")) return "platform_failure";
  return "other";
}

/** Our own bound fired: the library's AbortSignal is not honoured while D-Bus waits, so we race it. */
class KeychainTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms / 1000} s`);
  }
}

function toLinkError(err: unknown, platform: NodeJS.Platform, action: string): LinkError {
  if (err instanceof LinkError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const kind = keyringErrorKind(err);
  if (kind === "no_storage_access" || kind === "bounded_out") {
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

/**
 * Opens the keychain of a profile. Every call is bounded by `timeoutMs` (default 15 s): a keychain
 * that does not answer in time fails with `keychain_locked`. Known gap: the library's `AsyncEntry`
 * constructor connects to D-Bus synchronously and can block the thread past the bound (a Secret
 * Service that is activated but never answers); bounding that needs the calls in a worker thread. After such a timeout, calls in the next
 * `timeoutMs` fail at once with the same error instead of waiting again, so a command that makes
 * several calls (logout deletes two items) waits at most about one bound in all (issue 16 item 3).
 */
export function createKeychainStore(options: KeychainOptions): KeychainStore {
  const service = keychainService(options.profile);
  const platform = options.platform ?? process.platform;
  const timeoutMs = options.timeoutMs ?? 15_000;
  /** Until when calls fail fast because the keychain just failed to answer within the bound. */
  let unresponsiveUntil = 0;

  async function withEntry<T>(item: KeychainItem, action: string, op: (e: AsyncEntry, s: AbortSignal) => Promise<T>): Promise<T> {
    if (Date.now() < unresponsiveUntil) throw toLinkError(new KeychainTimeout(timeoutMs), platform, action);
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      // The constructor connects to the store and throws synchronously when there is none.
      const entry = new AsyncEntry(service, item, { linux: { store: "secret-service" } });
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new KeychainTimeout(timeoutMs)), timeoutMs);
      });
      const call = op(entry, AbortSignal.timeout(timeoutMs));
      // The abandoned call may still settle later; its outcome no longer matters.
      call.catch(() => undefined);
      return await Promise.race([call, bound]);
    } catch (err) {
      // Also when the library itself blocked us past the bound (its constructor waits on D-Bus
      // synchronously, so our timer could not fire): the next calls must not wait again.
      if (err instanceof KeychainTimeout || Date.now() - started >= timeoutMs) unresponsiveUntil = Date.now() + timeoutMs;
      throw toLinkError(err, platform, action);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    service,
    get: (item) => withEntry(item, `read ${item}`, (e, signal) => e.getPassword(signal)),
    set: (item, value) => withEntry(item, `store ${item}`, (e, signal) => e.setPassword(value, signal)),
    delete: (item) => withEntry(item, `delete ${item}`, (e, signal) => e.deletePassword(signal)),
  };
}

/**
 * The OS keychain, through `@napi-rs/keyring` in a helper process (so a keychain that never answers
 * can neither block the event loop nor keep a finished command alive). One small service: `get` returns `null` when an
 * item is absent and throws a `LinkError` only for real failures (no Secret Service, locked
 * keychain), with a message that tells the person what to do. There is no plaintext fallback; on
 * Linux the entry is pinned to the Secret Service so the non-persistent kernel keyring is never
 * used silently either.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { z } from "zod";
import { LinkError } from "../../../shared/errors.js";
import { checkProfileName } from "../../../shared/profile.js";
import type { LinkEnv } from "./env.js";

/** The items the Link keeps in the keychain (DESIGN.md section 6). */
export type KeychainItem =
  "vault" | "instance-id" | "refresh-token" | "authority-settings" | "authority-data-key" | "authority-link-token";

/** Every item but the vault record itself: what the vault seals (DESIGN.md section 9). */
export const SEALED_ITEMS: readonly Exclude<KeychainItem, "vault">[] = [
  "instance-id",
  "refresh-token",
  "authority-settings",
  "authority-data-key",
  "authority-link-token",
];

/** Where the items live: the OS keychain (Secret Service, macOS Keychain, Credential Manager) or the encrypted file. */
export type { KeychainBackend } from "../../../shared/control.js";
import type { KeychainBackend } from "../../../shared/control.js";

export interface KeychainStore {
  readonly service: string;
  /** Which backend this is; stores made for tests or benchmarks may leave it out. */
  readonly backend?: KeychainBackend;
  get(item: KeychainItem): Promise<string | null>;
  set(item: KeychainItem, value: string): Promise<void>;
  /** Returns true when something was deleted. */
  delete(item: KeychainItem): Promise<boolean>;
  /**
   * Gives the store up because its process is stopping: a call waiting on the keychain fails at
   * once, and so does every later call (`keychain_unavailable`), instead of holding the stop for up
   * to the bound. The OS keychain's helper process is killed. Stores with nothing to end leave it out.
   */
  close?(): void;
  /** Forgets any key derived from a passphrase (the file keychain's), so the next call needs the passphrase again. */
  forgetKey?(): void;
}

export interface KeychainOptions {
  /** Profile name; `default` uses service `piper-link`, others `piper-link.<profile>`. */
  profile: string;
  /** The Link's environment: the helper process inherits it (runtime/env.ts `childEnv`). */
  env: LinkEnv;
  /** A keychain that waits on an unlock prompt nobody answers fails after this long, in ms (default `env.keychainTimeoutMs`). */
  timeoutMs?: number;
  /** How long an idle keychain helper process is kept, in ms (default KEYCHAIN_HELPER_IDLE_MS). */
  helperIdleMs?: number;
  platform?: NodeJS.Platform;
}

/**
 * The documented bound on one OS-keychain call, in ms: a keychain that has not answered by then (an
 * unlock prompt nobody answers, a Secret Service that never replies) fails with `keychain_locked`.
 * Whatever waits on a keychain call (a background `start` waiting for its daemon) derives its own
 * wait from this bound, never from a copy of the number.
 */
export const KEYCHAIN_TIMEOUT_MS = 15_000;

/**
 * A test and diagnostic knob, not a setting: a whole number of ms that shortens the bound (so a test
 * of a keychain that never answers need not wait 15 s). It can only shorten: values above
 * `KEYCHAIN_TIMEOUT_MS` count as the bound itself; values that are not a positive whole number are
 * ignored.
 */
export const KEYCHAIN_TIMEOUT_ENV = "PIPER_LINK_KEYCHAIN_TIMEOUT_MS";

/** The bound in force, in ms: `KEYCHAIN_TIMEOUT_MS`, or less when `KEYCHAIN_TIMEOUT_ENV` says so. */
export function keychainTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env[KEYCHAIN_TIMEOUT_ENV];
  const ms = raw === undefined || !/^\d+$/.test(raw) ? 0 : Number(raw);
  return ms > 0 ? Math.min(ms, KEYCHAIN_TIMEOUT_MS) : KEYCHAIN_TIMEOUT_MS;
}

/** The keychain service of a profile. Throws a `bad_request` LinkError for an invalid profile name. */
export function keychainService(profile: string): string {
  return profile === "default" ? "piper-link" : `piper-link.${checkProfileName(profile)}`;
}

/** The command that starts this Link with the file keychain: under `npm start` that is npm's, since `piper-link` may not be on PATH there. */
function fileKeychainCommand(underNpmStart: boolean): string {
  return underNpmStart ? "npm start -- --keychain file" : "piper-link start --keychain file";
}

function advice(platform: NodeJS.Platform, underNpmStart: boolean): string {
  if (platform === "darwin") return "Unlock the login keychain in Keychain Access and try again.";
  if (platform === "win32") return "Check that Windows Credential Manager is available for this user.";
  return (
    "Piper Link needs a Secret Service keyring (GNOME Keyring or KWallet) on the session D-Bus. " +
    "Install and start one (e.g. `apt-get install gnome-keyring dbus-x11`), unlock it, and try again. " +
    "Over SSH, run inside `dbus-run-session` with gnome-keyring-daemon unlocked. " +
    `Without one, keep the keys in an encrypted file instead: \`${fileKeychainCommand(underNpmStart)}\` (your passphrase, asked at the terminal, or read from the file PIPER_LINK_PASSPHRASE_FILE names).`
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
  // keyring-rs spells the label "Couldn't access platform secure storage" in some versions and
  // "Couldn't access platform storage" in the one @napi-rs/keyring 2 ships (seen with a locked collection).
  if (/^Couldn't access platform (secure )?storage/.test(message)) return "no_storage_access";
  if (message.startsWith("Platform failure")) return "platform_failure";
  return "other";
}

/** Our own bound fired: the library's AbortSignal is not honoured while D-Bus waits, so the helper's caller times it. */
class KeychainTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms / 1000} s`);
  }
}

/** The store was closed (`KeychainStore.close`): its process is stopping. */
class KeychainClosed extends Error {
  constructor() {
    super("the keychain was closed because Piper Link is stopping");
  }
}

function toLinkError(err: unknown, platform: NodeJS.Platform, action: string, underNpmStart: boolean): LinkError {
  if (err instanceof LinkError) return err;
  if (err instanceof KeychainClosed)
    return new LinkError("keychain_unavailable", `Piper Link is stopping, so it did not ${action}.`, { cause: err });
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
    `The keychain is not available, so Piper Link could not ${action}. ${advice(platform, underNpmStart)} (${text})`,
    { cause: err },
  );
}

/** One request to the keychain helper, and its answer (validated: a process is a boundary too). */
interface KeychainRequest {
  id: number;
  op: "get" | "set" | "delete";
  service: string;
  item: KeychainItem;
  value: string | null;
}
const KeychainReplySchema = z.discriminatedUnion("ok", [
  z.object({ id: z.number(), ok: z.literal(true), value: z.union([z.string(), z.boolean(), z.null()]) }),
  z.object({ id: z.number(), ok: z.literal(false), message: z.string() }),
]);

/**
 * The keychain helper's code. @napi-rs/keyring's constructor and, on a Secret Service whose unlock
 * prompt never returns, its calls wait on D-Bus synchronously, for D-Bus's own 25 s reply timeout:
 * in the Link's thread that would block the event loop, so no timer could bound them (issue 16 item
 * 3). They run in a small helper process instead, which the Link kills when the bound fires. A
 * process, not a worker thread: a thread stuck in a native call cannot be stopped, and Node waits
 * for it at exit, so a command that gave up after the bound still did not end until D-Bus did. The
 * code is inline (`-e`) so the same helper runs from src (tsx), dist (tsc) and Electron's bundle
 * without a build step knowing about it; the library is loaded by the absolute path the Link
 * resolved (argv[1]).
 */
const HELPER_SOURCE = `
const { Entry } = require(process.argv[1]);
process.on("message", (m) => {
  let reply;
  try {
    const entry = new Entry(m.service, m.item, { linux: { store: "secret-service" } });
    let value = null;
    if (m.op === "get") value = entry.getPassword();
    else if (m.op === "set") entry.setPassword(m.value);
    else value = entry.deletePassword();
    reply = { id: m.id, ok: true, value: value === undefined ? null : value };
  } catch (e) {
    reply = { id: m.id, ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  process.send(reply);
});
process.on("disconnect", () => process.exit(0));
`;

/** The library's error, rebuilt from the helper's message so `keyringErrorKind` reads its label. */
class KeyringError extends Error {}

/**
 * How long an idle keychain helper is kept for the next call, in ms. A helper is a whole Node
 * process (tens of MB) and a daemon uses the keychain at start, at sign-in and at sign-out only; a
 * new helper costs some tens of milliseconds.
 */
export const KEYCHAIN_HELPER_IDLE_MS = 3000;

/**
 * A helper process that runs keychain calls one at a time. `call` rejects with `KeychainTimeout`
 * after `timeoutMs`; the stuck helper is then killed (SIGKILL: it is inside a native call) and the
 * next call starts a fresh one. A helper without calls for `idleMs` ends; the next call starts
 * another. An idle or killed helper never keeps the Link's process alive. `close` kills the helper
 * and rejects the calls waiting on it and every later call with `KeychainClosed`.
 */
function createKeychainHelper(
  env: LinkEnv,
  timeoutMs: number,
  idleMs = KEYCHAIN_HELPER_IDLE_MS,
): { call(req: Omit<KeychainRequest, "id">): Promise<string | boolean | null>; close(): void } {
  let helper: ChildProcess | null = null;
  let nextId = 1;
  let idleTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const pending = new Map<number, { resolve: (v: string | boolean | null) => void; reject: (e: Error) => void }>();

  /** Lets the Link's process exit without waiting for `h` (its IPC channel and the child itself). */
  function release(h: ChildProcess): void {
    h.channel?.unref();
    h.unref();
  }

  function end(h: ChildProcess): void {
    if (helper === h) helper = null;
    // Ended on purpose: its exit fails nobody that is still waiting on another helper.
    h.removeAllListeners("exit");
    release(h);
    h.kill("SIGKILL");
  }

  function endWhenIdle(h: ChildProcess): void {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (helper === h && pending.size === 0) end(h);
    }, idleMs);
    idleTimer.unref();
  }

  function failAll(err: Error): void {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  }

  function spawnHelper(): ChildProcess {
    const keyringPath = createRequire(import.meta.url).resolve("@napi-rs/keyring");
    // Electron's binary acts as Node with ELECTRON_RUN_AS_NODE. Only these arguments: a Link under
    // tsx does not load the TypeScript loader into a helper that does not need it. No NODE_OPTIONS:
    // the helper holds what the keychain gives, and code named there (--require) would run in it.
    const vars: NodeJS.ProcessEnv = {
      ...env.vars,
      ...("electron" in process.versions ? { ELECTRON_RUN_AS_NODE: "1" } : {}),
    };
    delete vars["NODE_OPTIONS"];
    const h = spawn(process.execPath, ["-e", HELPER_SOURCE, keyringPath], {
      stdio: ["ignore", "ignore", "ignore", "ipc"],
      env: vars,
    });
    h.on("message", (raw: unknown) => {
      const reply = KeychainReplySchema.safeParse(raw);
      if (!reply.success) return;
      const p = pending.get(reply.data.id);
      if (p === undefined) return;
      pending.delete(reply.data.id);
      if (reply.data.ok) p.resolve(reply.data.value);
      else p.reject(new KeyringError(reply.data.message));
      // An idle helper must not keep a CLI command alive.
      if (pending.size === 0) {
        release(h);
        endWhenIdle(h);
      }
    });
    h.on("error", (err) => {
      if (helper === h) helper = null;
      failAll(err);
    });
    h.on("exit", () => {
      if (helper === h) helper = null;
      failAll(new KeyringError("Platform failure: the keychain helper ended"));
    });
    return h;
  }

  return {
    call(req) {
      if (closed) return Promise.reject(new KeychainClosed());
      clearTimeout(idleTimer);
      helper ??= spawnHelper();
      const h = helper;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          // The helper is stuck in a D-Bus call; end it so later calls do not queue behind it.
          end(h);
          reject(new KeychainTimeout(timeoutMs));
        }, timeoutMs);
        timer.unref();
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        const message: KeychainRequest = { id, ...req };
        h.ref();
        h.channel?.ref();
        h.send(message);
      });
    },
    close() {
      closed = true;
      clearTimeout(idleTimer);
      if (helper !== null) end(helper);
      // end() leaves the waiting calls to their timers; on a close they fail now.
      failAll(new KeychainClosed());
    },
  };
}

/**
 * Opens the OS keychain of a profile. Every call runs in a helper process and is bounded by
 * `timeoutMs` (default `env.keychainTimeoutMs`, 15 s): a keychain that does not answer in time fails
 * with `keychain_locked` and its helper is killed. After such a timeout, calls in the next
 * `timeoutMs` fail at once with the same error instead of waiting again, so a command that makes
 * several calls (logout deletes two items) waits at most about one bound in all, and ends then
 * (issue 16 item 3). `close()` ends a waiting call at once (`keychain_unavailable`) when the
 * process stops.
 */
export function createKeychainStore(options: KeychainOptions): KeychainStore {
  const service = keychainService(options.profile);
  const platform = options.platform ?? options.env.platform;
  const timeoutMs = options.timeoutMs ?? options.env.keychainTimeoutMs;
  const helper = createKeychainHelper(options.env, timeoutMs, options.helperIdleMs);
  /** Until when calls fail fast because the keychain just failed to answer within the bound. */
  let unresponsiveUntil = 0;

  async function run(req: Omit<KeychainRequest, "id">, action: string): Promise<string | boolean | null> {
    if (Date.now() < unresponsiveUntil)
      throw toLinkError(new KeychainTimeout(timeoutMs), platform, action, options.env.underNpmStart);
    try {
      return await helper.call(req);
    } catch (err) {
      if (err instanceof KeychainTimeout) unresponsiveUntil = Date.now() + timeoutMs;
      throw toLinkError(err, platform, action, options.env.underNpmStart);
    }
  }

  return {
    service,
    backend: "os",
    async get(item) {
      const v = await run({ op: "get", service, item, value: null }, `read ${item}`);
      return typeof v === "string" ? v : null;
    },
    async set(item, value) {
      await run({ op: "set", service, item, value }, `store ${item}`);
    },
    async delete(item) {
      return (await run({ op: "delete", service, item, value: null }, `delete ${item}`)) === true;
    },
    close() {
      helper.close();
    },
  };
}

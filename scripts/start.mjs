// `npm start`: the desktop app when Electron and a display are available, else the headless daemon
// in the foreground (same core, UI in a browser, CLI for everything).
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, "..");

function electronBinary() {
  try {
    const dir = path.dirname(require.resolve("electron/package.json"));
    const rel = readFileSync(path.join(dir, "path.txt"), "utf8");
    const bin = path.join(dir, "dist", rel);
    return existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

function hasDisplay() {
  if (process.platform !== "linux") return true;
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/**
 * better-sqlite3 is built for Node's ABI (the headless Link and the tests use it). The desktop app's
 * embedded authority runs inside Electron, so it needs a build for Electron's ABI: fetch the
 * prebuilt binary for this Electron into out/native/ (in a scratch copy, so node_modules keeps the
 * Node build). Packaged apps get theirs from electron-builder instead.
 */
function ensureElectronSqlite() {
  const version = JSON.parse(readFileSync(require.resolve("electron/package.json"), "utf8")).version;
  const target = path.join(root, "out", "native", `electron-${version}`, "better_sqlite3.node");
  if (existsSync(target)) return;
  const scratch = mkdtempSync(path.join(os.tmpdir(), "piper-sqlite-"));
  try {
    cpSync(path.dirname(require.resolve("better-sqlite3/package.json")), scratch, { recursive: true });
    rmSync(path.join(scratch, "build"), { recursive: true, force: true });
    console.log(`Fetching better-sqlite3 for Electron ${version}…`);
    const r = spawnSync(
      process.execPath,
      [require.resolve("prebuild-install/bin.js"), "--runtime", "electron", "--target", version],
      { cwd: scratch, stdio: "inherit" },
    );
    if (r.status !== 0) throw new Error("prebuild-install failed");
    mkdirSync(path.dirname(target), { recursive: true });
    cpSync(path.join(scratch, "build", "Release", "better_sqlite3.node"), target);
  } catch (err) {
    console.warn(
      `Could not get better-sqlite3 for Electron (${err.message}); the embedded authority will not start in the desktop app. Run \`npm start -- --headless\` instead.`,
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Whether a Secret Service answers on the session bus: a read of an absent item in a child process
 * (so a bus that never answers cannot hang `npm start`), bounded to 5 s.
 */
function secretServiceAnswers() {
  const probe = `const { Entry } = require(${JSON.stringify(require.resolve("@napi-rs/keyring"))});
    new Entry("piper-link.probe", "probe", { linux: { store: "secret-service" } }).getPassword();`;
  const r = spawnSync(process.execPath, ["-e", probe], { stdio: "ignore", timeout: 5000 });
  return r.status === 0;
}

/**
 * On a terminal with no OS keychain and no remembered choice, offers the encrypted-file keychain
 * (issue 15 item 1). Returns the arguments to add to `piper-link start`: `--keychain file` when the
 * person said yes, nothing otherwise (the Link then says plainly that there is no keychain).
 */
async function keychainArgs() {
  if (process.argv.includes("--keychain")) {
    const value = process.argv[process.argv.indexOf("--keychain") + 1];
    return value === undefined ? [] : ["--keychain", value];
  }
  const choice = await import(
    pathToFileURL(path.join(root, "dist", "main", "core", "runtime", "keychain-choice.js")).href
  );
  const settings = await import(pathToFileURL(path.join(root, "dist", "main", "core", "runtime", "settings.js")).href);
  const paths = await import(pathToFileURL(path.join(root, "dist", "main", "core", "runtime", "paths.js")).href);
  const linkEnv = await import(pathToFileURL(path.join(root, "dist", "main", "core", "runtime", "env.js")).href);
  const profile = process.env.PIPER_LINK_PROFILE || "default";
  const situation = {
    platform: process.platform,
    interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    remembered: await settings.readKeychainChoice(
      paths.resolveLinkPaths(profile, linkEnv.platformEnv(linkEnv.readLinkEnv(process.env))).dataDir,
    ),
    argv: process.argv.slice(2),
    secretServiceAnswers: false,
  };
  // The probe costs a moment: only when the answer matters.
  if (choice.keychainOffer(situation) === "none" || secretServiceAnswers()) return [];
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await rl.question(choice.KEYCHAIN_QUESTION);
  rl.close();
  return /^y(es)?$/i.test(answer.trim()) ? ["--keychain", "file"] : [];
}

// tsc -b is incremental: it rebuilds only what changed (under a second when nothing did).
run(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", "tsconfig.json"]);
// The window: loaded by Electron, and served to browsers by the headless Link under /ui/.
run(process.execPath, [path.join(root, "scripts", "build-window.mjs"), "--if-changed"]);
const electron = electronBinary();
let child;
if (electron && hasDisplay() && !process.argv.includes("--headless")) {
  ensureElectronSqlite();
  child = spawn(electron, [root], { cwd: root, stdio: "inherit" });
} else {
  const why = electron ? "no display" : "no Electron binary on this machine";
  const extra = await keychainArgs();
  console.log(`Starting Piper Link headless (${why}).`);
  const { DAEMON_NODE_FLAGS } = await import(
    pathToFileURL(path.join(root, "dist", "main", "core", "runtime", "daemon-flags.js")).href
  );
  child = spawn(
    process.execPath,
    [...DAEMON_NODE_FLAGS, path.join(root, "bin", "piper-link.js"), "start", "--foreground", ...extra],
    { cwd: root, stdio: "inherit" },
  );
}
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

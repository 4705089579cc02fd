// The window's bundles (electron-vite: the Electron main process, the preload and the renderer that
// the headless Link also serves under /ui/). `node scripts/build-window.mjs` always builds (npm run
// build:electron); `--if-changed` builds only when the sources changed since the last build
// (`npm start`, so a start after no edit does not spend ~30-45 s rebuilding the same bundles);
// `--check` only says whether a build is needed (exit 0: current, 1: needed, with the reason).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const REPO = path.resolve(import.meta.dirname, "..");
/** What the last build was made from (a SHA-256, see `bundleSourcesHash`), beside its output. */
const STAMP = path.join("out", ".sources-sha256");
/** The outputs a build leaves; a missing one means building whatever the stamp says. */
const OUTPUTS = ["out/main/index.js", "out/preload/index.cjs", "out/renderer/index.html"];
const INPUTS = ["electron.vite.config.ts", "package.json", "package-lock.json"];

/**
 * SHA-256 (hex) over what the bundles are built from: every file under `root`/src (relative path
 * and content, in a fixed order), the bundler's config and the package manifests. Content, not
 * modification times: a checkout or a copy that changes no byte needs no rebuild.
 */
export function bundleSourcesHash(root = REPO) {
  const hash = createHash("sha256");
  const add = (file) => hash.update(path.relative(root, file)).update("\0").update(readFileSync(file)).update("\0");
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    )) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) add(full);
    }
  };
  walk(path.join(root, "src"));
  for (const f of INPUTS) if (existsSync(path.join(root, f))) add(path.join(root, f));
  return hash.digest("hex");
}

/** Why `root` needs a build ("no build yet", "sources changed"), or null when its bundles are current. */
export function buildReason(root = REPO) {
  if (!OUTPUTS.every((f) => existsSync(path.join(root, f)))) return "no build yet";
  const stamp = path.join(root, STAMP);
  if (!existsSync(stamp) || readFileSync(stamp, "utf8").trim() !== bundleSourcesHash(root))
    return "sources changed since the last build";
  return null;
}

/** Runs electron-vite's build in `root` and records what it was built from; exits on failure. */
export function buildWindow(root = REPO) {
  const sources = bundleSourcesHash(root);
  const r = spawnSync(
    process.execPath,
    [path.join(root, "node_modules", "electron-vite", "bin", "electron-vite.js"), "build"],
    { cwd: root, stdio: "inherit" },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
  writeFileSync(path.join(root, STAMP), `${sources}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href && process.argv.includes("--check")) {
  const reason = buildReason();
  console.log(reason ?? "current");
  process.exit(reason === null ? 0 : 1);
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const reason = process.argv.includes("--if-changed") ? buildReason() : "asked to build";
  if (reason === null)
    console.log("The window's bundles are current (no source changed since the last build); not rebuilding.");
  else {
    console.log(`Building the window's bundles (${reason})…`);
    buildWindow();
  }
}

// After `npm install` in a clone: compile the node side and the SDK package in packages/sdk (so
// `piper-link` and `npm start` work at once), then fetch the Electron binary when this machine can.
// Electron's package downloads its binary lazily; doing it here keeps `npm start` fast on a normal
// machine. Where the download is impossible (offline, or a network that only reaches the npm
// registry) install still succeeds and Piper Link runs headless; set ELECTRON_SKIP_BINARY_DOWNLOAD=1 to skip the attempt.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, "..");

// Installed from a tarball (`npm install piper-link-<version>.tgz`), the package carries dist/
// compiled by `npm pack` (prepack) and neither the sources nor TypeScript: nothing to compile.
if (existsSync(path.join(root, "tsconfig.json"))) {
  const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", "tsconfig.json"], {
    cwd: root,
    stdio: "inherit",
  });
  if (tsc.status !== 0) {
    console.error("piper-link: compiling the node side failed (see above).");
    process.exit(tsc.status ?? 1);
  }
}

if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD) {
  console.log(
    "piper-link: ELECTRON_SKIP_BINARY_DOWNLOAD is set; Piper Link will run headless (npm start serves the UI to a browser).",
  );
  process.exit(0);
}
let electronDir;
try {
  electronDir = path.dirname(require.resolve("electron/package.json"));
} catch {
  process.exit(0); // production install without devDependencies
}
if (existsSync(path.join(electronDir, "path.txt"))) process.exit(0);
const result = spawnSync(process.execPath, [path.join(electronDir, "install.js")], {
  stdio: ["ignore", "ignore", "pipe"],
  timeout: 300_000,
});
if (result.status === 0) console.log("piper-link: Electron binary installed.");
else {
  console.log(
    "piper-link: the Electron binary could not be downloaded here, so Piper Link will run headless: " +
      "`npm start` starts the daemon and prints the address of its browser UI. Retry later with `npx install-electron`.",
  );
}

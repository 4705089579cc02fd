// `npm start`: the desktop app when Electron and a display are available, else the headless daemon
// in the foreground (same core, UI in a browser, CLI for everything).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

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

run(process.execPath, [require.resolve("typescript/bin/tsc"), "-b", "tsconfig.json"]);
const electron = electronBinary();
let child;
if (electron && hasDisplay() && !process.argv.includes("--headless")) {
  run(process.execPath, [require.resolve("electron-vite/bin/electron-vite.js"), "build"]);
  child = spawn(electron, [root], { cwd: root, stdio: "inherit" });
} else {
  const why = electron ? "no display" : "no Electron binary on this machine";
  console.log(`Starting Piper Link headless (${why}).`);
  child = spawn(process.execPath, [path.join(root, "bin", "piper-link.js"), "start", "--foreground"], { cwd: root, stdio: "inherit" });
}
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

/**
 * The desktop app's embedded authority runs in an Electron utility process (DESIGN.md section 2),
 * not a Node child: the packaged app has no separate Node binary, and RunAsNode is fused off.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { utilityProcess } from "electron";
import { AUTHORITY_ARGV_MARKER } from "../../shared/authority-process.js";
import type { AuthorityLauncher } from "../core/authority/embedded-authority.js";

/**
 * better-sqlite3 built for Electron's ABI: electron-builder rebuilds it in packaged apps; in
 * development `npm start` places an Electron build here (scripts/start.mjs).
 */
function sqliteBinding(appPath: string): string | null {
  const file = path.join(appPath, "out", "native", `electron-${process.versions.electron}`, "better_sqlite3.node");
  return existsSync(file) ? file : null;
}

export function utilityLauncher(appPath: string): AuthorityLauncher {
  const entry = path.join(import.meta.dirname, "authority.js");
  const binding = sqliteBinding(appPath);
  return (args, env, keys) => {
    const child = utilityProcess.fork(entry, [AUTHORITY_ARGV_MARKER, ...args], {
      env: binding === null ? env : { ...env, PIPER_AUTHORITY_SQLITE_BINDING: binding },
      stdio: "pipe",
      serviceName: "Piper authority",
    });
    // A utility process has no stdin: the keys are its first message (server/utility-entry.ts).
    child.postMessage(JSON.stringify(keys));
    let exited = false;
    const listeners: Array<(code: number | null, signal: string | null) => void> = [];
    child.once("exit", (code) => {
      exited = true;
      for (const l of listeners) l(code, null);
    });
    return {
      stdout: child.stdout,
      stderr: child.stderr,
      get exited() {
        return exited;
      },
      onExit: (listener) => {
        if (exited) listener(null, null);
        else listeners.push(listener);
      },
      // A utility process has no signals: kill() ends it; both requests map to that.
      kill: () => void child.kill(),
    };
  };
}

/**
 * The Link's directories for one profile: data (embedded authority, settings), logs, and the
 * runtime directory with the discovery file, control file and single-instance lock.
 */
import path from "node:path";
import { appDataBase, profileDirName, runtimeBase, type PlatformEnv } from "../../../shared/discovery.js";

export interface LinkPaths {
  dataDir: string;
  logDir: string;
  runtimeDir: string;
  discoveryFile: string;
  controlFile: string;
  lockFile: string;
  logFile: string;
}

/** The folders of `profile` on the platform `p` describes (`platformEnv(linkEnv)` in runtime/env.ts). */
export function resolveLinkPaths(profile: string, p: PlatformEnv): LinkPaths {
  const name = profileDirName(profile);
  const dataDir = path.join(appDataBase(p), name);
  let logDir: string;
  if (p.platform === "darwin") logDir = path.join(p.homedir, "Library", "Logs", name);
  else if (p.platform === "win32") logDir = path.join(dataDir, "logs");
  else logDir = path.join(p.env["XDG_STATE_HOME"] || path.join(p.homedir, ".local", "state"), name, "logs");
  const runtimeDir = path.join(runtimeBase(p), name);
  return {
    dataDir,
    logDir,
    runtimeDir,
    discoveryFile: path.join(runtimeDir, "link.json"),
    controlFile: path.join(runtimeDir, "control.json"),
    lockFile: path.join(runtimeDir, "link.lock"),
    // The rotating log's current file (runtime/logger.ts): a symlink kept by pino-roll.
    logFile: path.join(logDir, "current.log"),
  };
}

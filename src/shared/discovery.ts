/**
 * Where the Link publishes its address (DESIGN.md section 3) and what that file holds. Pure
 * functions of the environment so the core (which writes) and the SDK (which reads) agree.
 */
import { z } from "zod";
import { checkProfileName } from "./profile.js";

export const DiscoveryFileSchema = z.object({
  /** The agent channel's WebSocket URL. */
  url: z.string().regex(/^ws:\/\/(127\.0\.0\.1|\[::1\]|localhost):\d+\/v1\/link$/),
  /** The Link's process; when it no longer runs, the file is stale. */
  pid: z.number().int().positive(),
  /** The Link's version. */
  version: z.string(),
  /** When the Link started (ISO 8601). */
  startedAt: z.string(),
});
export type DiscoveryFile = z.infer<typeof DiscoveryFileSchema>;

export interface PlatformEnv {
  platform: string;
  env: Readonly<Record<string, string | undefined>>;
  homedir: string;
}

/**
 * Folder name of a profile's files; the default profile is the one SDKs look for. Throws a
 * `bad_request` LinkError for a name that is not a profile name (shared/profile.ts), so no path is
 * ever built from one.
 */
export function profileDirName(profile: string): string {
  return profile === "default" ? "piper-link" : `piper-link-${checkProfileName(profile)}`;
}

/** Per-user application data directory (not yet suffixed with the app's folder). */
export function appDataBase(p: PlatformEnv): string {
  if (p.platform === "win32") return p.env["APPDATA"] ?? `${p.homedir}\\AppData\\Roaming`;
  if (p.platform === "darwin") return `${p.homedir}/Library/Application Support`;
  return p.env["XDG_DATA_HOME"] || `${p.homedir}/.local/share`;
}

/**
 * The runtime directory that holds the discovery file: `$XDG_RUNTIME_DIR` on Linux when set,
 * else the app-data directory.
 */
export function runtimeBase(p: PlatformEnv): string {
  const xdg = p.env["XDG_RUNTIME_DIR"];
  if (p.platform !== "win32" && p.platform !== "darwin" && xdg) return xdg;
  return appDataBase(p);
}

export function discoveryFilePath(p: PlatformEnv, profile = "default"): string {
  const sep = p.platform === "win32" ? "\\" : "/";
  return [runtimeBase(p), profileDirName(profile), "link.json"].join(sep);
}

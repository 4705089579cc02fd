/**
 * Finds the Link (DESIGN.md section 3): option > PIPER_LINK_URL > discovery file (live pid) > default.
 * The discovery file is the default profile's unless PIPER_LINK_PROFILE names another.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { DiscoveryFileSchema, discoveryFilePath } from "../../../src/shared/discovery.js";
import { DEFAULT_LINK_PORT } from "../../../src/shared/version.js";

export const DEFAULT_LINK_URL = `ws://127.0.0.1:${DEFAULT_LINK_PORT}/v1/link`;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (process.platform !== "linux") return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Where the Link is: `url` and how it was found. `source: "none"` (and `url` null) when
 * PIPER_LINK_PROFILE names a profile other than the default whose Link is not running: the default
 * port belongs to the default profile's Link, which must not answer for another profile.
 */
export type Discovered =
  | { url: string; source: "option" | "environment" | "discovery_file" | "default" }
  | { url: null; source: "none"; profile: string };

export function discoverLinkUrl(
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Discovered {
  if (option) return { url: option, source: "option" };
  const fromEnv = env["PIPER_LINK_URL"];
  if (fromEnv) return { url: fromEnv, source: "environment" };
  const profile = env["PIPER_LINK_PROFILE"] || "default";
  try {
    // A Link started with a profile (PIPER_LINK_PROFILE) is found by agents started with the same one.
    const file = discoveryFilePath({ platform: process.platform, env, homedir: env["HOME"] ?? os.homedir() }, profile);
    const parsed = DiscoveryFileSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
    if (parsed.success && pidAlive(parsed.data.pid)) return { url: parsed.data.url, source: "discovery_file" };
  } catch {
    // No file, unreadable, or not JSON: fall through to the default.
  }
  if (profile !== "default") return { url: null, source: "none", profile };
  return { url: DEFAULT_LINK_URL, source: "default" };
}

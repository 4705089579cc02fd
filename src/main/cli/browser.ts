/**
 * The person's browser as the CLI sees it: whether this terminal has a display to open one on,
 * and opening an address in it. Over SSH or on a bare server there is none, and `login` then
 * signs in with a code instead of waiting for a browser that will never come (issue 15 item 3).
 */
import { spawn } from "node:child_process";
import { hasDisplay as displaySeen } from "../core/runtime/display.js";

/** `hasDisplay` for this process's environment and platform (see core/runtime/display.ts). */
export function hasDisplay(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): boolean {
  return displaySeen(env, platform);
}

/** Opens `url` in the system browser; false when there is no way to (then the caller prints the URL). */
export function openBrowser(url: string): boolean {
  if (!hasDisplay()) return false;
  const [cmd, args] =
    process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", url]]
        : ["xdg-open", [url]];
  try {
    const child = spawn(cmd, args, { stdio: "ignore", detached: true });
    child.on("error", () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

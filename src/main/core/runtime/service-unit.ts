/**
 * Headless machines start Piper Link with the person's session through a systemd user unit
 * (`~/.config/systemd/user/piper-link.service`): the same foreground daemon `piper-link start
 * --foreground` runs, restarted if it fails, with the keychain on the user's session bus.
 */
import os from "node:os";
import path from "node:path";

export function serviceName(profile: string): string {
  return profile === "default" ? "piper-link.service" : `piper-link-${profile.replace(/[^A-Za-z0-9_.-]/g, "_")}.service`;
}

export function userUnitDir(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  return path.join(env["XDG_CONFIG_HOME"] || path.join(home, ".config"), "systemd", "user");
}

/** Quotes one word for a systemd ExecStart line (systemd.service(5), "Command lines"). */
function quote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/(["\\])/g, "\\$1")}"`;
}

export function userUnit(options: { profile: string; command: string[]; authority?: string | undefined }): string {
  const exec = [...options.command, "--profile", options.profile, "start", "--foreground", ...(options.authority ? ["--authority", options.authority] : [])];
  return [
    "[Unit]",
    `Description=Piper Link${options.profile === "default" ? "" : ` (profile ${options.profile})`}: your AI agents' secrets, with your approval`,
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${exec.map(quote).join(" ")}`,
    "Restart=on-failure",
    "RestartSec=2",
    // 4: another Link already runs for this profile; restarting would not help.
    "RestartPreventExitStatus=4",
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}

/**
 * Headless machines start Piper Link with the person's session through a systemd user unit
 * (`~/.config/systemd/user/piper-link.service`): the same foreground daemon `piper-link start
 * --foreground` runs, restarted if it fails, with the keychain on the user's session bus.
 */
import path from "node:path";
import { checkProfileName } from "../../../shared/profile.js";

/** The unit's name for a profile. Throws a `bad_request` LinkError for an invalid profile name. */
export function serviceName(profile: string): string {
  return profile === "default" ? "piper-link.service" : `piper-link-${checkProfileName(profile)}.service`;
}

/** The systemd user unit folder under `configHome` (`LinkEnv.configHome`: `XDG_CONFIG_HOME`, else `~/.config`). */
export function userUnitDir(configHome: string): string {
  return path.join(configHome, "systemd", "user");
}

/**
 * Quotes one word for a systemd ExecStart line (systemd.service(5), "Command lines"). systemd
 * expands `%` specifiers and `$VAR` even inside quotes, so they are doubled to stay literal.
 */
function quote(word: string): string {
  const literal = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(literal)) return literal;
  return `"${literal.replace(/(["\\])/g, "\\$1")}"`;
}

/**
 * One `Environment=` line (systemd.exec(5)): quoted as a whole, `%` doubled (specifiers are expanded
 * there too; `$` is not). Throws a TypeError for a name that is not an environment variable name.
 */
function environmentLine(name: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`Not an environment variable name: ${name}`);
  return `Environment="${`${name}=${value}`.replace(/%/g, "%%").replace(/(["\\])/g, "\\$1")}"`;
}

/**
 * Exit statuses after which restarting cannot help: 4, another Link already runs for this profile;
 * 5, the keychain failed (locked, no Secret Service, or the file keychain without a passphrase
 * source) and needs the person, not a retry every 2 s.
 */
export const NO_RESTART_EXIT_STATUSES = [4, 5] as const;

export interface UserUnitOptions {
  profile: string;
  command: string[];
  authority?: string | undefined;
  /** Environment for the daemon (e.g. the file keychain's passphrase file), one `Environment=` line each. */
  environment?: Readonly<Record<string, string>>;
}

/** The unit file's text. Throws a `bad_request` LinkError for an invalid profile name. */
export function userUnit(options: UserUnitOptions): string {
  const profile = checkProfileName(options.profile);
  const exec = [
    ...options.command,
    "--profile",
    profile,
    "start",
    "--foreground",
    ...(options.authority ? ["--authority", options.authority] : []),
  ];
  return [
    "[Unit]",
    `Description=Piper Link${profile === "default" ? "" : ` (profile ${profile})`}: your AI agents' secrets, with your approval`,
    "",
    "[Service]",
    "Type=simple",
    ...Object.entries(options.environment ?? {}).map(([name, value]) => environmentLine(name, value)),
    `ExecStart=${exec.map(quote).join(" ")}`,
    "Restart=on-failure",
    "RestartSec=2",
    `RestartPreventExitStatus=${NO_RESTART_EXIT_STATUSES.join(" ")}`,
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}

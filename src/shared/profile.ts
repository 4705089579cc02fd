/**
 * Profile names, one rule for every place a profile enters: the CLI's `--profile` and
 * `PIPER_LINK_PROFILE`, the desktop app, the SDK's discovery. A name becomes part of folder names,
 * a keychain service and a systemd unit (whose ExecStart expands `$` and `%` even inside quotes), so
 * only a plain word is allowed: no `/` to nest folders, nothing a shell or systemd would read.
 */
import { z } from "zod";
import { LinkError } from "./errors.js";

export const DEFAULT_PROFILE = "default";

/** The rule in words, for error messages. */
export const PROFILE_NAME_RULE =
  "A profile name is 1 to 64 characters: letters, digits, '.', '_' and '-', starting with a letter or digit";

export const ProfileNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, PROFILE_NAME_RULE);

/** True when `name` follows the rule. */
export function isProfileName(name: string): boolean {
  return ProfileNameSchema.safeParse(name).success;
}

/** Returns `name` when it is a valid profile name; throws a `bad_request` LinkError naming the rule otherwise. */
export function checkProfileName(name: string): string {
  if (!isProfileName(name)) {
    throw new LinkError("bad_request", `${PROFILE_NAME_RULE}; ${JSON.stringify(name.slice(0, 80))} is not one.`);
  }
  return name;
}

/** The profile named by `PIPER_LINK_PROFILE` (unset or empty: the default), checked. Throws like `checkProfileName`. */
export function profileFromEnv(env: Readonly<Record<string, string | undefined>>): string {
  const value = env["PIPER_LINK_PROFILE"];
  return value === undefined || value === "" ? DEFAULT_PROFILE : checkProfileName(value);
}

/** How CLI commands reach the running Link: through its control channel, or a clear `not_running`. */
import type { ControlMethod, ControlParams, ControlResult } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { connectToRunningLink, type ControlClient } from "../core/loopback/control-client.js";
import { platformEnv } from "../core/runtime/env.js";
import { resolveLinkPaths } from "../core/runtime/paths.js";
import { cliEnv } from "./env.js";

/** Runs `fn` with a control connection to the profile's Link; null when no Link is running. */
export async function withRunningLink<T>(
  profile: string,
  fn: (client: ControlClient) => Promise<T>,
): Promise<T | null> {
  const client = await connectToRunningLink(resolveLinkPaths(profile, platformEnv(cliEnv())).controlFile);
  if (client === null) return null;
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `not_running`, with the start command for this profile (`--profile <name>` unless it is the default). */
export function notRunning(profile: string): LinkError {
  if (profile === "default")
    return new LinkError("not_running", "Piper Link is not running. Start it with `piper-link start`.");
  return new LinkError(
    "not_running",
    `Piper Link is not running (profile ${profile}). Start it with \`piper-link --profile ${profile} start\`.`,
  );
}

/** One LinkApi call on the running Link; `not_running` when there is none. */
export async function callLink<M extends ControlMethod>(
  profile: string,
  method: M,
  params: ControlParams<M>,
): Promise<ControlResult<M>> {
  const result = await withRunningLink(profile, (c) => c.call(method, params));
  if (result === null) throw notRunning(profile);
  return result;
}

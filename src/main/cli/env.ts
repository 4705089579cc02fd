/**
 * The CLI's one reader of its environment: `readLinkEnv(process.env)` on first use, then the same
 * value for the rest of the command. The CLI is a composition root; the core it starts gets this
 * value as an option and never reads `process.env` itself (runtime/env.ts).
 */
import { readLinkEnv, type LinkEnv } from "../core/runtime/env.js";

let read: LinkEnv | null = null;

/** This process's Link environment, read once. */
export function cliEnv(): LinkEnv {
  read ??= readLinkEnv(process.env);
  return read;
}

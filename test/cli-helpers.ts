/** Running the compiled `piper-link` as a person would, each test in its own HOME and profile. */
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { resolveLinkPaths, type LinkPaths } from "../src/main/core/runtime/paths.js";
import { tempDir, uniqueProfile } from "./helpers.js";

export const BIN = fileURLToPath(new URL("../bin/piper-link.js", import.meta.url));

export interface CliEnv {
  profile: string;
  home: string;
  env: NodeJS.ProcessEnv;
  paths: LinkPaths;
}

const created: CliEnv[] = [];

export async function newEnv(): Promise<CliEnv> {
  const home = await tempDir("piper-link-cli-");
  const profile = uniqueProfile();
  const env = {
    ...process.env,
    HOME: home,
    XDG_RUNTIME_DIR: path.join(home, "run"),
    XDG_DATA_HOME: path.join(home, "data"),
    XDG_STATE_HOME: path.join(home, "state"),
    PIPER_LINK_PROFILE: profile,
  };
  const e = { profile, home, env, paths: resolveLinkPaths(profile, { platform: "linux", env, homedir: home }) };
  created.push(e);
  return e;
}

export function cli(e: CliEnv, args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: e.env, encoding: "utf8", timeout: 60_000, ...(input === undefined ? {} : { input }) });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a command that must succeed with --json; returns its output validated by `schema`. */
export function cliJson<S extends z.ZodType>(e: CliEnv, args: string[], schema: S, input?: string): z.infer<S> {
  const r = cli(e, [...args, "--json"], input);
  if (r.code !== 0) throw new Error(`piper-link ${args.join(" ")} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return schema.parse(JSON.parse(r.stdout));
}

export function json(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

/** Stops every Link the tests started (for `after`). */
export function stopAll(): void {
  for (const e of created) spawnSync(process.execPath, [BIN, "stop"], { env: e.env });
}

const execFileAsync = promisify(execFile);

/**
 * Like `cliJson`, without blocking the event loop: for tests whose own process holds live
 * connections (an SDK client waiting) while the CLI runs.
 */
export async function cliJsonAsync<S extends z.ZodType>(e: CliEnv, args: string[], schema: S): Promise<z.infer<S>> {
  const { stdout } = await execFileAsync(process.execPath, [BIN, ...args, "--json"], { env: e.env, encoding: "utf8", timeout: 60_000 });
  return schema.parse(JSON.parse(stdout));
}

/** Running the compiled `piper-link` as a person would, each test in its own HOME and profile. */
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { resolveLinkPaths, type LinkPaths } from "../src/main/core/runtime/paths.js";
import { readFileSync, writeFileSync } from "node:fs";
import { tempDir, TEST_ACCOUNT_PASSWORD, TEST_PASSPHRASE, TEST_PIN, uniqueProfile } from "./helpers.js";

export const BIN = fileURLToPath(new URL("../bin/piper-link.js", import.meta.url));
/** The shared pty helper (test/pty_run.py): a real controlling terminal whose prompts it answers. */
export const PTY_RUN = fileURLToPath(new URL("./pty_run.py", import.meta.url));
/** Debian's python3 has the standard library the helper needs; another python3 may be first on PATH. */
export const PYTHON = process.platform === "linux" ? "/usr/bin/python3" : "python3";

/** Answers at the CLI's prompts: the test person's PIN and passphrase, typed at the terminal. */
export const PERSON_ANSWERS: ReadonlyArray<readonly [string, string]> = [
  ["a few unrelated words work well\\): $", TEST_PASSPHRASE],
  ["Repeat it: $", TEST_PASSPHRASE],
  ["Enter to skip and approve with the passphrase\\): $", TEST_PIN],
  ["PIN: $", TEST_PIN],
  ["authority checks it\\): $", TEST_ACCOUNT_PASSWORD],
  ["PIN \\(6\\+ digits\\): $", TEST_PIN],
  ["Repeat the PIN: $", TEST_PIN],
  ["passphrase: $", TEST_PASSPHRASE],
  ["to unlock Piper Link: $", TEST_PASSPHRASE],
];

/** The argv that runs the CLI with a pty as its terminal, answering with `answers`. */
export function ptyArgv(
  args: readonly string[],
  answers: ReadonlyArray<readonly [string, string]> = PERSON_ANSWERS,
  timeoutS = 60,
): string[] {
  return [PTY_RUN, JSON.stringify({ answers, timeout: timeoutS }), "--", process.execPath, BIN, ...args];
}

/**
 * Commands that ask the person at the terminal (a proof of presence, or the passphrase): the
 * helpers run them with a pty and the person's answers. Everything else runs without a terminal.
 */
function asksThePerson(args: readonly string[]): boolean {
  const [a, b] = args;
  return (
    a === "approve" ||
    a === "pin" ||
    a === "unlock" ||
    (a === "secrets" && (b === "set" || b === "hosts")) ||
    (a === "grants" && (b === "limit" || b === "keep"))
  );
}

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
  // Unattended, as on a server: the daemon unlocks from this file (the person's PIN is set at a
  // terminal after the first start, see `cli`).
  const passphraseFile = path.join(home, "passphrase");
  writeFileSync(passphraseFile, `${TEST_PASSPHRASE}\n`, { mode: 0o600 });
  const env = {
    ...process.env,
    PIPER_LINK_PASSPHRASE_FILE: passphraseFile,
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
  const [cmd, rest] = asksThePerson(args) ? [PYTHON, ptyArgv(args)] : [process.execPath, [BIN, ...args]];
  const r = spawnSync(cmd, rest, {
    env: e.env,
    encoding: "utf8",
    timeout: 60_000,
    ...(input === undefined ? {} : { input }),
  });
  const result = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  if (args[0] === "start" && result.code === 0 && !args.includes("--foreground")) ensurePin(e);
  return result;
}

/**
 * After a start from the passphrase file (unattended), the person sets the approval PIN at a
 * terminal once, with the passphrase as the proof, as the README says.
 */
function ensurePin(e: CliEnv): void {
  const status = spawnSync(process.execPath, [BIN, "status", "--json"], {
    env: e.env,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (status.status !== 0 || !/"state": "unlocked"/.test(status.stdout) || /"pinSet": true/.test(status.stdout)) return;
  // The passphrase is the one in the env's passphrase file (a test may have chosen another).
  const file = e.env["PIPER_LINK_PASSPHRASE_FILE"];
  const passphrase = file === undefined ? TEST_PASSPHRASE : readFileSync(file, "utf8").replace(/\n$/, "");
  const answers = PERSON_ANSWERS.map(([rx, text]) => [rx, text === TEST_PASSPHRASE ? passphrase : text] as const);
  const r = spawnSync(PYTHON, ptyArgv(["pin", "set"], answers), { env: e.env, encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`piper-link pin set exited ${r.status}: ${r.stdout}${r.stderr}`);
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
  const full = [...args, "--json"];
  const [cmd, rest] = asksThePerson(args) ? [PYTHON, ptyArgv(full)] : [process.execPath, [BIN, ...full]];
  const { stdout } = await execFileAsync(cmd, rest, { env: e.env, encoding: "utf8", timeout: 60_000 });
  return schema.parse(JSON.parse(stdout));
}

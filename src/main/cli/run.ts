/**
 * `piper-link run --secret NAME[=ENV] -- <command>`: for agents that cannot use the SDK. Resolves
 * each secret through the Link (waiting for approval when needed) and starts the command with them
 * in its environment only — not in argv, not in any log.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import type { ActingFor } from "../../shared/protocol.js";
import type { PiperError as PiperErrorType } from "@piper-link/sdk";
import { entryPoint } from "../core/process/command-line.js";
import type { Runner } from "./commands.js";
import { ExitCode } from "./output.js";
import { AGENT_DEFAULTS } from "../../shared/defaults.js";

interface SecretSpec {
  variable: string;
  envName: string;
}

function parseSpec(value: string, previous: SecretSpec[]): SecretSpec[] {
  const m = /^([A-Za-z0-9_.-]+)(?:=([A-Za-z_][A-Za-z0-9_]*))?$/.exec(value);
  if (!m?.[1])
    throw new InvalidArgumentError("use VARIABLE or VARIABLE=ENV_NAME, e.g. OPENAI_API_KEY or openai=OPENAI_API_KEY.");
  return [...previous, { variable: m[1], envName: m[2] ?? m[1] }];
}

function exitCodeOf(err: PiperErrorType): number {
  if (err.code === "link_not_running") return ExitCode.notRunning;
  return ExitCode.failure;
}

export function addRunCommand(program: Command, run: Runner): void {
  program
    .command("run")
    .description(
      "run a command with secrets from Piper Link in its environment (approve them in Piper Link when asked)",
    )
    .requiredOption("--secret <VARIABLE[=ENV_NAME]>", "a secret to pass, repeatable", parseSpec, [])
    .option("--client-id <id>", "the agent client ID the person sees", "piper-link-run")
    .option("--name <name>", "a display name for the approval prompt")
    .option("--reason <text>", "why the command needs the secrets (shown in the prompt)")
    .option("--timeout <ms>", "how long to wait for approval", (v) => Number(v), AGENT_DEFAULTS.approvalWaitMs)
    .argument("<command...>", "the command and its arguments (after --)")
    .passThroughOptions()
    .action(
      async (
        command: string[],
        o: { secret: SecretSpec[]; clientId: string; name?: string; reason?: string; timeout: number },
      ) => {
        await run(() => runWithSecrets(command, o), false);
      },
    );
}

/** Finds `file` the way spawn will: a path as given (against the cwd), else the first match on PATH. */
function whichCommand(file: string): string | null {
  const candidates = file.includes("/")
    ? [path.resolve(file)]
    : (process.env["PATH"] ?? "")
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, file));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return fs.realpathSync(candidate);
    } catch {
      // not here
    }
  }
  return null;
}

/** What `run` tells the Link it asks for: the command's executable, its script (interpreters), the cwd and argv. */
function wrappedCommand(file: string, args: string[]): ActingFor {
  const cwd = process.cwd();
  const executable = whichCommand(file) ?? file;
  return {
    kind: "command",
    executable,
    script: entryPoint(executable, [file, ...args], cwd),
    cwd,
    commandLine: [file, ...args],
  };
}

/** Resolves the secrets, runs the command with them, and returns the command's exit code. */
async function runWithSecrets(
  command: string[],
  o: { secret: SecretSpec[]; clientId: string; name?: string; reason?: string; timeout: number },
): Promise<number> {
  const [file, ...args] = command;
  if (file === undefined) throw new InvalidArgumentError("give the command to run after --");
  // Loaded on use: the daemon and the other commands do not need the SDK.
  const { createPiperClient, PiperError } = await import("@piper-link/sdk");
  // The grant binds to the command about to run, not to `piper-link run` (issue 13 item 6).
  const client = createPiperClient({
    clientId: o.clientId,
    name: o.name ?? `piper-link run ${file}`,
    fallbackToEnv: false,
    actingFor: wrappedCommand(file, args),
  });
  const values: Record<string, string> = {};
  try {
    for (const spec of o.secret) {
      const r = await client.getSecret(spec.variable, {
        timeoutMs: o.timeout,
        ...(o.reason ? { reason: o.reason } : {}),
        onPending: ({ requestId }) =>
          process.stderr.write(`Waiting for you to approve ${spec.variable} in Piper Link (request ${requestId})…\n`),
      });
      values[spec.envName] = r.value;
    }
  } catch (err) {
    client.close();
    if (!(err instanceof PiperError)) throw err;
    process.stderr.write(`piper-link run: ${err.message}\n`);
    return exitCodeOf(err);
  }
  client.close();
  const child = spawn(file, args, { stdio: "inherit", env: { ...process.env, ...values } });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => child.kill(signal));
  return new Promise<number>((resolve) => {
    child.on("error", (err) => {
      process.stderr.write(`piper-link run: could not start ${file}: ${err.message}\n`);
      resolve(127);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

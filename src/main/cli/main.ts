#!/usr/bin/env node
/**
 * `piper-link`, the command line of the Link core. Each command talks to the running Link through
 * the control channel when there is one, and to the keychain directly when a change must persist
 * while the Link is stopped.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Help, InvalidArgumentError, Option } from "commander";
import type { KeychainBackend, LinkStatus } from "../../shared/control.js";
import { displayText } from "../../shared/display.js";
import { HttpErrorBodySchema, LinkError } from "../../shared/errors.js";
import { DEFAULT_PROFILE, isProfileName, PROFILE_NAME_RULE } from "../../shared/profile.js";
import { DEFAULT_LINK_PORT, LINK_VERSION } from "../../shared/version.js";
import type { RunningDaemon } from "../core/daemon.js";
import type { KeychainStore } from "../core/runtime/keychain.js";
import { guardSigusr1 } from "../../platform/harden.js";
import { diskFull, isPidAlive, storageError, storageErrorFor } from "../core/runtime/files.js";
import { platformEnv } from "../core/runtime/env.js";
import { cliEnv } from "./env.js";
import { resolveLinkPaths } from "../core/runtime/paths.js";
import { authorityCommand } from "../../server/main.js";
import type { AuthorityConfig } from "../core/link.js";
import { addApprovalCommands, addDevSignIn, addUiCommand } from "./commands.js";
import { addLoginCommand } from "./login.js";
import { notRunning, withRunningLink } from "./link-access.js";
import { addCallCommand } from "./call.js";
import { addPyperCommand } from "./pyper.js";
import { addMcpCommand } from "./mcp.js";
import { addInstallCliCommand } from "./launch.js";
import { addRunCommand } from "./run.js";
import { addServiceCommand } from "./service.js";
import { DAEMON_NODE_FLAGS } from "../core/runtime/daemon-flags.js";
import { createOutput, ExitCode, reportError, type Output } from "./output.js";
import { openTerminal, type Terminal } from "./terminal-proof.js";
import { addVaultCommands, describeVault, unlockAt } from "./vault-commands.js";

interface GlobalOptions {
  profile: string;
}

interface StartOptions extends GlobalOptions {
  port: number;
  authority: string;
  requestTtl?: number | undefined;
  keychain?: KeychainBackend | undefined;
  livenessSweepMs?: number | undefined;
}

function parseKeychain(value: string): KeychainBackend {
  if (value === "os" || value === "file") return value;
  throw new InvalidArgumentError("use os (the system keychain) or file (an encrypted file protected by a passphrase).");
}

const BACKEND_WORDS: Record<KeychainBackend, string> = { os: "the OS keychain", file: "encrypted file (passphrase)" };

/**
 * `embedded` (default), `none`, or the https URL of a remote authority (token from
 * PIPER_LINK_AUTHORITY_TOKEN; a private CA's certificate file in PIPER_LINK_AUTHORITY_CA).
 */
function authorityConfig(value: string, requestTtlMs?: number): AuthorityConfig | null {
  if (value === "embedded")
    return requestTtlMs === undefined ? { kind: "embedded" } : { kind: "embedded", requestTtlMs };
  if (value === "none") return null;
  // Normally the person signs in (`piper-link login`); a provisioned token is accepted for automation.
  const token = cliEnv().authorityToken;
  const caFile = cliEnv().authorityCaFile;
  return { kind: "remote", url: value, linkToken: token, ca: caFile ? fs.readFileSync(caFile, "utf8") : null };
}

function parseAuthority(value: string): string {
  if (value === "embedded" || value === "none" || /^https:\/\//.test(value)) return value;
  throw new InvalidArgumentError("use embedded, none, or an https:// URL.");
}

/**
 * `--profile` and `PIPER_LINK_PROFILE` (commander passes both through here): a valid profile name
 * (shared/profile.ts), or a usage error (exit 2) naming the rule. An empty PIPER_LINK_PROFILE means
 * the default profile, as the SDK reads it; an empty `--profile` is refused.
 */
function parseProfile(value: string): string {
  if (value === "") {
    // An empty PIPER_LINK_PROFILE is the default (the SDK reads it so); an empty --profile is most
    // likely an unset shell variable, and acting on the default profile then would be a surprise.
    if (cliEnv().profile === "") return DEFAULT_PROFILE;
    throw new InvalidArgumentError(`${PROFILE_NAME_RULE}; --profile was given an empty name.`);
  }
  if (!isProfileName(value)) throw new InvalidArgumentError(`${PROFILE_NAME_RULE}.`);
  return value;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("Use a port number from 0 to 65535.");
  return n;
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive whole number.");
  return n;
}

/**
 * "as Name <email>" for the account the authority named (issue 15 item 7), escaped and cut since
 * a remote authority's words reach a terminal; null when it has not said.
 */
function signedInAs(s: LinkStatus): string | null {
  if (s.account == null) return null;
  const email = s.account.email === null ? "" : ` <${displayText(s.account.email, 120)}>`;
  return `yes, as ${displayText(s.account.name, 80)}${email}`;
}

/**
 * One true sentence about signing in: whether agents are served (an instance ID), and how the Link
 * proves itself to the authority, or what to do next. "no" never comes with an account line that
 * reads like a yes.
 */
function describeSignIn(s: LinkStatus): string {
  const how =
    s.authority?.account === "oauth"
      ? "with an account"
      : s.authority?.account === "local-token"
        ? "with the embedded authority's local development token"
        : null;
  if (s.state === "ready")
    return `${signedInAs(s) ?? "yes"}, instance ${s.instanceIdRedacted ?? ""}${how === null ? "" : ` (${how})`}`;
  if (s.vault.state !== "unlocked") return "no — Piper Link is locked; `piper-link unlock` first";
  if (s.authority?.signInError != null) return `no — ${s.authority.signInError}`;
  if (s.authority?.account === "local-token")
    return "no — `piper-link dev sign-in` signs this machine in to the embedded authority, `piper-link login` with an account";
  return "no — `piper-link login` signs in";
}

function describeStatus(s: LinkStatus): string[] {
  const lines = [
    `Piper Link ${s.version} is running (pid ${s.pid}${s.profile === "default" ? "" : `, profile ${s.profile}`})`,
    `  agents:    ${s.url}`,
    `  pyper-sdk: http://127.0.0.1:${s.port}/piper-link-context`,
  ];
  if (s.pyper != null)
    lines.push(
      `  pyper TLS: https://127.0.0.1:${s.pyper.port}/ (grants and exchange; certificate ${s.pyper.certFile})`,
    );
  if (s.portFallback)
    lines.push(`  note:      port ${s.preferredPort} was taken; SDKs find this port through ${s.discoveryFile}`);
  const backend = s.keychain.backend === null ? "injected" : BACKEND_WORDS[s.keychain.backend];
  lines.push(`  ${describeVault(s).replace(/^vault: /, "vault:     ")}`);
  lines.push(
    s.keychain.ok ? `  keychain:  ${backend}` : `  keychain:  ${backend}: ${s.keychain.message ?? "unavailable"}`,
  );
  lines.push(`  signed in: ${describeSignIn(s)}`);
  if (s.state === "ready" && s.machine != null) lines.push(`  machine:   ${displayText(s.machine, 80)}`);
  if (s.authority !== null) {
    lines.push(
      `  authority: ${s.authority.url} (${s.authority.mode}, ${s.authority.connected ? "connected" : s.authority.error === null ? "connecting…" : `unreachable: ${s.authority.error}; retrying`})`,
    );
  } else
    lines.push(
      s.vault.state === "unlocked" ? "  authority: none configured" : "  authority: starts when Piper Link is unlocked",
    );
  lines.push(`  agents connected: ${s.agents.length}`);
  for (const a of s.agents) {
    // Name and client ID are the agent's own words: escaped and cut (issue 16 item 6).
    const who =
      a.name !== null ? displayText(a.name, 80) : a.clientId !== null ? displayText(a.clientId, 80) : "(no hello yet)";
    const proc = a.process
      ? `pid ${a.process.pid} ${displayText(a.process.executable ?? "?")} in ${displayText(a.process.cwd ?? "?")}`
      : "unknown process";
    lines.push(`    - ${who}${a.clientId && a.name ? ` (${displayText(a.clientId, 80)})` : ""}: ${proc}`);
  }
  for (const risk of s.risks) lines.push(`  risk:      ${risk.message}`);
  lines.push(`  log:       ${s.logFile}`);
  return lines;
}

/**
 * After a start: the vault is unlocked already (passphrase file), or the person is asked on the
 * controlling terminal (a new passphrase and PIN on a first run), or — no terminal — the Link
 * stays locked and says how to unlock. Returns the status after.
 */
async function unlockIfAsked(profile: string, status: LinkStatus): Promise<LinkStatus> {
  if (status.vault.state === "unlocked") return status;
  let terminal: Terminal;
  try {
    terminal = await openTerminal();
  } catch {
    process.stderr.write(
      "Piper Link started locked: unlock it in its window (`piper-link ui`) or with `piper-link unlock` at a terminal.\n",
    );
    return status;
  }
  try {
    return await unlockAt(terminal, profile);
  } finally {
    terminal.close();
  }
}

/**
 * The keychain of `profile`, opened directly (the Link is not running). Loaded on use, as is the
 * daemon below: the commands that only talk to a running Link (`run`, `status`, `call`…) start
 * without the Link's core, whose modules would cost every such command a few hundred ms of CPU.
 */
async function openKeychain(options: { profile: string; dataDir: string }): Promise<KeychainStore> {
  return (await import("../core/runtime/keychain-choice.js")).openKeychain({ ...options, env: cliEnv() });
}

async function startInForeground(opts: StartOptions, out: Output): Promise<number> {
  const { startDaemon, StoppedBeforeStart } = await import("../core/daemon.js");
  let daemon: RunningDaemon;
  try {
    daemon = await startDaemon({
      profile: opts.profile,
      env: cliEnv(),
      port: opts.port,
      authority: authorityConfig(opts.authority, opts.requestTtl),
      keychain: opts.keychain,
      livenessSweepMs: opts.livenessSweepMs,
      onReady: async (started, link) => {
        const status = await unlockIfAsked(opts.profile, started);
        // The window's address carries the control token, so it goes to a terminal only, never to a log file.
        const window = process.stdout.isTTY
          ? [`  window:    ${link.uiUrl()}`]
          : ["  window:    run `piper-link ui` to open it"];
        out.result(status, [...describeStatus(status), ...window, "Press Ctrl+C to stop."]);
      },
    });
  } catch (err) {
    if (!(err instanceof StoppedBeforeStart)) throw err;
    // Ctrl+C (or a service manager's stop) while starting, e.g. on a keychain that does not answer:
    // a stop that was asked for, reported like the stop of a running Link (exit 0; nothing more under --json).
    if (!out.json) process.stdout.write(`${err.message}\n`);
    exitSoon();
    return ExitCode.ok;
  }
  const reason = await daemon.done;
  if (!out.json) process.stdout.write(`Piper Link stopped (${reason}).\n`);
  exitSoon();
  return ExitCode.ok;
}

/**
 * The Link has stopped; anything still holding the event loop (a sign-in's listener or socket
 * nobody will use) must not keep the process, or the terminal under `npm start`, past `stop`
 * (issue 15 item 7). Unref'd: it fires only when something is left over, 1 s after.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 1000).unref();
}

/**
 * The error the background daemon hit, as it reported it: the daemon runs with `--json`, so its
 * failure is one `{error, message}` line (issue 16 items 3-4). The code is read from that value,
 * never guessed from words in the message (advice text may say "unlocked" about an absent keychain).
 */
function daemonFailure(exitCode: number | null, text: string, logDir: string): LinkError {
  for (const line of text.split("\n").reverse()) {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const reported = HttpErrorBodySchema.safeParse(json);
    if (reported.success) return new LinkError(reported.data.error, reported.data.message);
  }
  if (exitCode === ExitCode.alreadyRunning)
    return new LinkError("already_running", text || "Piper Link is already running.");
  if (exitCode === ExitCode.ok)
    return new LinkError(
      "internal_error",
      text || "Piper Link was told to stop (a stop signal) before it had started.",
    );
  // A full disk leaves the daemon no room even to say why.
  if (text === "" && diskFull(logDir))
    return storageErrorFor("ENOSPC", logDir) ?? new LinkError("internal_error", "Piper Link exited during start.");
  return new LinkError("internal_error", text || "Piper Link exited during start.");
}

/**
 * What a start does besides waiting on the keychain (the embedded authority's process among it), in
 * ms: well under a second on a usual machine, so this is a generous ceiling.
 */
const START_WORK_MS = 15_000;

/**
 * How long a background `start` waits for its daemon to serve or exit, in ms, given the keychain's
 * bound (`keychainTimeoutMs`): clearly longer than that bound, so a daemon whose keychain does not
 * answer has ended with its own error (`keychain_locked`) by then and the command reports that
 * error, not a timeout of its own (issue 16 item 3). A start waits on the keychain about one bound
 * at most: after a call times out, the next ones fail at once.
 */
function backgroundStartWaitMs(keychainBoundMs: number): number {
  return keychainBoundMs + START_WORK_MS;
}

/** When a background `start` says it is still waiting (human output only), in ms. */
const START_PROGRESS_AFTER_MS = 2000;

/** Starts the daemon as a detached process and waits until it serves. */
async function startInBackground(opts: StartOptions, out: Output): Promise<number> {
  const paths = resolveLinkPaths(opts.profile, platformEnv(cliEnv()));
  const running = await withRunningLink(opts.profile, (c) => c.call("status", {}));
  if (running !== null)
    throw new LinkError("already_running", `Piper Link is already running (pid ${running.pid}, ${running.url}).`);
  const outFile = `${paths.logDir}/daemon.out`;
  let fd: number;
  try {
    fs.mkdirSync(paths.logDir, { recursive: true, mode: 0o700 });
    fd = fs.openSync(outFile, "w", 0o600);
  } catch (err) {
    throw storageError(err, paths.logDir) ?? err;
  }
  const entry = fileURLToPath(import.meta.url);
  // The daemon starts locked (or unlocks itself from PIPER_LINK_PASSPHRASE_FILE); the passphrase is
  // asked here on the terminal once it serves, and handed over its control channel, never its
  // environment or argv, which the user's other processes can read.
  const env = { ...cliEnv().vars };
  const child = spawn(
    process.execPath,
    [
      ...DAEMON_NODE_FLAGS,
      ...process.execArgv,
      entry,
      "--profile",
      opts.profile,
      "start",
      "--foreground",
      "--port",
      String(opts.port),
      "--authority",
      opts.authority,
      "--json",
      ...(opts.requestTtl === undefined ? [] : ["--request-ttl", String(opts.requestTtl)]),
      ...(opts.keychain === undefined ? [] : ["--keychain", opts.keychain]),
      ...(opts.livenessSweepMs === undefined ? [] : ["--liveness-sweep-ms", String(opts.livenessSweepMs)]),
    ],
    { detached: true, stdio: ["ignore", fd, fd], env },
  );
  fs.closeSync(fd);
  child.unref();
  // The daemon runs with this environment, so its keychain bound is the one read here.
  const keychainBoundMs = cliEnv().keychainTimeoutMs;
  const waitMs = backgroundStartWaitMs(keychainBoundMs);
  const spawnedAt = Date.now();
  let toldWaiting = false;
  // Ctrl+C (or a stop signal) while waiting stops the start: the daemon runs in its own session and
  // would not hear it, so it is passed on (the daemon ends a start at once on a stop signal).
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
    process.exit(128 + (signal === "SIGINT" ? 2 : 15));
  };
  process.once("SIGINT", forward);
  process.once("SIGTERM", forward);
  try {
    return await waitForDaemon();
  } finally {
    process.off("SIGINT", forward);
    process.off("SIGTERM", forward);
  }

  async function waitForDaemon(): Promise<number> {
    while (Date.now() < spawnedAt + waitMs) {
      const status = await withRunningLink(opts.profile, (c) => c.call("status", {})).catch(() => null);
      if (status !== null && status.pid === child.pid) {
        const unlocked = await unlockIfAsked(opts.profile, status);
        out.result(unlocked, describeStatus(unlocked));
        return ExitCode.ok;
      }
      if (child.pid === undefined || !isPidAlive(child.pid) || child.exitCode !== null) {
        // Let the exit status arrive: it says why (exit codes are documented), the text says it in words.
        if (child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
        throw daemonFailure(child.exitCode, fs.readFileSync(outFile, "utf8").trim(), paths.logDir);
      }
      if (!out.json && !toldWaiting && Date.now() - spawnedAt >= START_PROGRESS_AFTER_MS) {
        // Most often the OS keychain waiting on an unlock prompt; the daemon gives up on it after the bound.
        toldWaiting = true;
        out.warn(
          `Piper Link (pid ${child.pid}) is still starting. If the keychain asks to be unlocked, unlock it; Piper Link gives up on a keychain that has not answered in ${Math.ceil(keychainBoundMs / 1000)} s.`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new LinkError(
      "internal_error",
      `Piper Link (pid ${child.pid}) has neither started nor ended within ${Math.round(waitMs / 1000)} s; see ${outFile}.`,
    );
  }
}

/**
 * The order of `piper-link --help`: what a person does first (start, sign in, look, stop), then
 * secrets, deciding requests, grants, activity, running agents, and the service, developer and
 * authority commands last. Commands not named here (added later) come after `run`.
 */
export const HELP_ORDER = [
  "start",
  "login",
  "status",
  "stop",
  "logout",
  "ui",
  "unlock",
  "lock",
  "pin",
  "secrets",
  "requests",
  "approve",
  "deny",
  "grants",
  "revoke",
  "activity",
  "run",
  "service",
  "dev",
  "authority",
];

function helpRank(name: string): number {
  if (name === "help") return HELP_ORDER.length + 1;
  const at = HELP_ORDER.indexOf(name);
  return at === -1 ? HELP_ORDER.indexOf("run") + 0.5 : at;
}

/** A usage message as a sentence: capitalized, ending with a full stop. */
function usageSentence(message: string): string {
  // commander's suggestion comes on its own line in parentheses: one sentence in JSON.
  const joined = message.trim().replace(/\s*\n\(Did you mean (.+?)\?\)$/, ". Did you mean $1?");
  const text = joined.charAt(0).toUpperCase() + joined.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** Where commander's own messages (usage errors, help hints) go; `--json` swallows them (see `main`). */
export interface UsageSink {
  json: boolean;
  /** The last usage error commander reported, without its "error: " prefix. */
  message: string | null;
}

/** Commander's output: usage errors in the CLI's voice, and nothing but the JSON under --json. */
function usageOutput(usage: UsageSink) {
  return {
    writeErr: (text: string) => {
      if (!usage.json) process.stderr.write(text);
    },
    outputError: (text: string, write: (text: string) => void) => {
      usage.message = text.trim().replace(/^error:\s*/i, "");
      // The same voice as every other error of the CLI ("piper-link: <sentence>").
      write(`piper-link: ${usageSentence(usage.message)}\n`);
    },
  };
}

/** Gives a command tree built elsewhere (`authority`) the same usage handling as the rest. */
function adoptUsageHandling(cmd: Command, usage: UsageSink): void {
  cmd.configureOutput(usageOutput(usage)).showHelpAfterError("(run with --help for usage)").exitOverride();
  for (const sub of cmd.commands) adoptUsageHandling(sub, usage);
}

export function buildProgram(
  run: (job: (out: Output) => Promise<number>, json: boolean) => Promise<void>,
  usage: UsageSink = { json: false, message: null },
): Command {
  const program = new Command("piper-link")
    .description("Piper Link: gives your AI agents your secrets safely, with your approval.")
    .version(LINK_VERSION, "-V, --version")
    .addOption(
      new Option(
        "--profile <name>",
        "profile (separate keychain entries, files and port): letters, digits, '.', '_', '-'",
      )
        .env("PIPER_LINK_PROFILE")
        .default(DEFAULT_PROFILE)
        .argParser(parseProfile),
    )
    .showHelpAfterError("(run with --help for usage)")
    .enablePositionalOptions()
    // Set before any subcommand is created, so every subcommand inherits them (commands built
    // elsewhere and added with addCommand get them at the end of this function).
    .configureOutput(usageOutput(usage))
    .configureHelp({
      visibleCommands: (cmd) => {
        const list = new Help().visibleCommands(cmd);
        return cmd.parent === null ? list.sort((a, b) => helpRank(a.name()) - helpRank(b.name())) : list;
      },
    })
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  program
    .command("start")
    .description("start the Link (in the background unless --foreground)")
    .option("--port <n>", "preferred port; a free one is used when it is taken", parsePort, DEFAULT_LINK_PORT)
    .option("--foreground", "run in this terminal until Ctrl+C")
    .option(
      "--authority <where>",
      "embedded (default), none, or the https:// URL of a remote authority",
      parseAuthority,
      "embedded",
    )
    .option(
      "--request-ttl <ms>",
      "how long pending requests wait for a decision (embedded authority; default 10 min)",
      parsePositiveInt,
    )
    .option(
      "--keychain <backend>",
      "os (the system keychain) or file (encrypted with a passphrase, for machines without one); remembered",
      parseKeychain,
    )
    .option("--json", "print the status as JSON")
    // For tests: they wait for what a sweep does, and a short period keeps that wait short.
    .addOption(
      new Option(
        "--liveness-sweep-ms <ms>",
        "how often ended processes and terminal sessions are looked for (default 2000)",
      )
        .argParser(parsePositiveInt)
        .hideHelp(),
    )
    .action(
      async (o: {
        port: number;
        foreground?: boolean;
        authority: string;
        requestTtl?: number;
        keychain?: KeychainBackend;
        json?: boolean;
        livenessSweepMs?: number;
      }) => {
        const opts = {
          ...globals(),
          port: o.port,
          authority: o.authority,
          requestTtl: o.requestTtl,
          keychain: o.keychain,
          livenessSweepMs: o.livenessSweepMs,
        };
        await run(
          (out) => (o.foreground ? startInForeground(opts, out) : startInBackground(opts, out)),
          o.json === true,
        );
      },
    );

  program
    .command("status")
    .description("show whether the Link runs, who is signed in, and the connected agents")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const status = await withRunningLink(globals().profile, (c) => c.call("status", {}));
        if (status === null) throw notRunning(globals().profile);
        out.result(status, describeStatus(status));
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("stop")
    .description("stop the running Link")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const { profile } = globals();
        const paths = resolveLinkPaths(profile, platformEnv(cliEnv()));
        const status = await withRunningLink(profile, async (c) => {
          const s = await c.call("status", {});
          await c.call("shutdown", {});
          return s;
        });
        if (status === null) throw notRunning(profile);
        // "Stopped" only once the process is gone, not when its discovery file is (issue 15 item
        // 7: a process that lingered after its files were removed was reported stopped).
        const deadline = Date.now() + 10_000;
        while (isPidAlive(status.pid) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        if (isPidAlive(status.pid))
          throw new LinkError(
            "internal_error",
            `Piper Link (pid ${status.pid}) was told to stop but is still running after 10 s; see ${paths.logFile}.`,
          );
        out.result({ stopped: true, pid: status.pid }, `Piper Link (pid ${status.pid}) stopped.`);
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("logout")
    .description(
      "forget this machine's instance ID and refresh token; agents are told at once. Signing in again gives a new instance ID, so the grants agents hold here end (`piper-link grants` lists them)",
    )
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const { profile } = globals();
        const viaLink = await withRunningLink(profile, (c) => c.call("logout", {}));
        if (viaLink === null) {
          const keychain = await openKeychain({
            profile,
            dataDir: resolveLinkPaths(profile, platformEnv(cliEnv())).dataDir,
          });
          await keychain.delete("instance-id");
          await keychain.delete("refresh-token");
        }
        out.result(
          { loggedOut: true, linkRunning: viaLink !== null },
          viaLink === null
            ? "Signed out. Agents now get `not_logged_in`."
            : "Signed out, and Piper Link locked itself: agents get `locked`. To sign in again, `piper-link unlock`, then `piper-link login`.",
        );
        return ExitCode.ok;
      }, o.json === true);
    });

  addApprovalCommands(program, () => globals().profile, run);
  addVaultCommands(program, () => globals().profile, run);
  addLoginCommand(program, () => globals().profile, run);
  addUiCommand(program, () => globals().profile, run);
  addRunCommand(program, run);
  addPyperCommand(program, () => globals().profile, run);
  addCallCommand(program, () => globals().profile, run);
  addMcpCommand(program, () => globals().profile, run);
  addInstallCliCommand(program, run);
  addServiceCommand(program, () => globals().profile, run);
  program.addCommand(authorityCommand());

  const dev = program.command("dev").description("developer commands: drive the context by hand");
  dev
    .command("set-instance")
    .description("store an instance ID in the keychain and push it to connected agents")
    .argument("<instance-id>", "the instance ID, e.g. inst_...")
    .option("--json", "print JSON")
    .action(async (instanceId: string, o: { json?: boolean }) => {
      await run(async (out) => {
        const { profile } = globals();
        const id = instanceId.trim();
        if (id.length === 0 || id.length > 256)
          throw new LinkError("bad_request", "The instance ID must be 1 to 256 characters.");
        const viaLink = await withRunningLink(profile, (c) => c.call("setInstanceId", { instanceId: id }));
        if (viaLink === null)
          await (
            await openKeychain({ profile, dataDir: resolveLinkPaths(profile, platformEnv(cliEnv())).dataDir })
          ).set("instance-id", id);
        out.result(
          { instanceIdSet: true, linkRunning: viaLink !== null },
          viaLink === null
            ? "Instance ID stored in the keychain; the Link serves it when it starts."
            : "Instance ID stored and pushed to connected agents.",
        );
        return ExitCode.ok;
      }, o.json === true);
    });
  addDevSignIn(dev, () => globals().profile, run);
  for (const cmd of program.commands) adoptUsageHandling(cmd, usage);
  return program;
}

/**
 * Runs the CLI on `argv` (process.argv shape) and returns the exit code (README "Exit codes"). With
 * `--json` anywhere before a `--`, usage errors are one JSON document on stdout,
 * `{"error":"usage","message":...}`, exit 2, and commander prints nothing else.
 */
export async function main(argv: string[]): Promise<number> {
  // `kill -USR1` would open Node's debugger in this process, and with it a way to run code in a
  // command the Link trusts (`run` and `mcp` claim to act for a program; a proof is typed into
  // `approve`). The CLI never needs it: a developer can still start it with --inspect.
  guardSigusr1();
  // `piper-link requests | head`: a reader that stops early closes the pipe; that ends the command
  // quietly, as it does for other Unix tools, instead of an EPIPE stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(ExitCode.ok);
    throw err;
  });
  let exitCode: number = ExitCode.ok;
  const dashDash = argv.indexOf("--");
  const usage: UsageSink = {
    json: (dashDash === -1 ? argv : argv.slice(0, dashDash)).includes("--json"),
    message: null,
  };
  const run = async (job: (out: Output) => Promise<number>, json: boolean): Promise<void> => {
    try {
      exitCode = await job(createOutput(json));
    } catch (err) {
      exitCode = reportError(err, json);
    }
  };
  try {
    await buildProgram(run, usage).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors with 2.
      if (err.exitCode === 0) return ExitCode.ok;
      if (usage.json) {
        const message = usageSentence(usage.message ?? err.message.replace(/^error:\s*/i, ""));
        process.stdout.write(
          `${JSON.stringify({ error: "usage", message: `${message} Run piper-link --help for usage.` })}\n`,
        );
      }
      return ExitCode.usage;
    }
    // Commands built elsewhere (`authority`) run outside `run`: their errors get the same one line
    // (or JSON) and exit code, never a stack trace.
    return reportError(err, usage.json);
  }
  return exitCode;
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv);
}

/**
 * How other programs start this checkout's CLI without asking a package registry for it: the
 * absolute command (this Node and this install's `bin/piper-link.js`) that `piper-link mcp
 * --print-config` puts into an MCP client's configuration, and `piper-link install-cli`, which
 * writes a small wrapper script named `piper-link` into the user's bin folder (`~/.local/bin`, the
 * XDG/systemd file-hierarchy place for a user's commands) so `piper-link` works in any folder.
 * `npx piper-link` outside the clone would ask the public npm registry for a package of that name,
 * which anyone could publish.
 */
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError } from "commander";
import { LinkError } from "../../shared/errors.js";
import { DEFAULT_PROFILE } from "../../shared/profile.js";
import { storageError } from "../core/runtime/files.js";
import type { Runner } from "./commands.js";
import { ExitCode } from "./output.js";

/** This install's `bin/piper-link.js` (this module sits at `<root>/{src,dist}/main/cli/`). */
export function binScript(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/piper-link.js");
}

/** The command that runs this checkout's CLI from anywhere: this Node, by absolute path, and `bin/piper-link.js`. */
export function cliCommand(): { command: string; script: string } {
  return { command: process.execPath, script: binScript() };
}

/** The MCP clients `--print-config` knows; `generic` is the `mcpServers` JSON most clients read. */
export const MCP_CLIENTS = ["claude", "cursor", "generic"] as const;
export type McpClientKind = (typeof MCP_CLIENTS)[number];

/** `--client`: one of MCP_CLIENTS, or a usage error. */
export function parseMcpClient(value: string): McpClientKind {
  const found = MCP_CLIENTS.find((c) => c === value);
  if (found === undefined) throw new InvalidArgumentError(`Use one of: ${MCP_CLIENTS.join(", ")}.`);
  return found;
}

/** What `mcp --print-config` prints: the server's command and arguments, and the client's own form. */
export interface McpConfig {
  client: McpClientKind;
  command: string;
  args: string[];
  /** The `mcpServers` entry (Cursor's `~/.cursor/mcp.json`, Claude Desktop, most clients). */
  mcpServers: { "piper-link": { command: string; args: string[] } };
  /** For Claude Code: the `claude mcp add` command line that registers the server, as argv. */
  claudeArgv?: string[];
}

/**
 * The MCP configuration for this checkout: absolute Node, absolute `bin/piper-link.js`, then
 * `--profile NAME` when the profile is not the default and `mcp` with the options that differ from
 * their defaults. Nothing in it is looked up on PATH or in a registry.
 */
export function mcpConfig(
  client: McpClientKind,
  profile: string,
  options: { clientId: string; approvalTimeout: number },
): McpConfig {
  const { command, script } = cliCommand();
  const args = [script, ...(profile === DEFAULT_PROFILE ? [] : ["--profile", profile]), "mcp"];
  if (options.clientId !== "piper-link-mcp") args.push("--client-id", options.clientId);
  if (options.approvalTimeout !== 120_000) args.push("--approval-timeout", String(options.approvalTimeout));
  const config: McpConfig = { client, command, args, mcpServers: { "piper-link": { command, args } } };
  if (client === "claude")
    config.claudeArgv = ["claude", "mcp", "add", "--scope", "user", "piper-link", "--", command, ...args];
  return config;
}

/** `word` quoted for a POSIX shell when it needs it (single quotes; a `'` as `'\''`). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+,=-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/** The human form of `mcp --print-config`: a command line for Claude Code, else the JSON to paste. */
export function describeMcpConfig(config: McpConfig): { text: string; hint: string } {
  if (config.claudeArgv !== undefined) {
    return {
      text: config.claudeArgv.map(shellQuote).join(" "),
      hint: "Run this line once; Claude Code then starts Piper Link's MCP server in every project.",
    };
  }
  const json = JSON.stringify({ mcpServers: config.mcpServers }, null, 2);
  const where =
    config.client === "cursor"
      ? "~/.cursor/mcp.json (all projects) or .cursor/mcp.json (one project)"
      : "your MCP client's configuration (its `mcpServers` object)";
  return { text: json, hint: `Put this into ${where}.` };
}

/** The line every wrapper written by `install-cli` carries: what marks the file as ours. */
const WRAPPER_MARK = "# piper-link: written by `piper-link install-cli`";

/**
 * The folder `install-cli` writes to: `$XDG_BIN_HOME` when it is an absolute path, else
 * `~/.local/bin` (systemd's file-hierarchy(7) user binaries folder, on PATH in most distributions'
 * default profiles when it exists).
 */
export function userBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env["XDG_BIN_HOME"];
  if (xdg !== undefined && path.isAbsolute(xdg)) return xdg;
  return path.join(env["HOME"] ?? os.homedir(), ".local", "bin");
}

/** The wrapper script: runs this Node on this checkout's bin with every argument (`exec`, so no shell stays between). */
export function wrapperScript(command: string, script: string): string {
  return [
    "#!/bin/sh",
    `${WRAPPER_MARK}; it runs the Piper Link checkout at ${path.dirname(path.dirname(script))}.`,
    "# Run `piper-link install-cli` again after moving the checkout; `piper-link install-cli --remove` deletes this file.",
    `exec ${shellQuote(command)} ${shellQuote(script)} "$@"`,
    "",
  ].join("\n");
}

/** What is at `file`: nothing, a wrapper of ours, or something else (a file, a link, a folder). */
async function whatIsAt(file: string): Promise<"none" | "ours" | "foreign"> {
  let st;
  try {
    st = await fs.lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "none";
    throw err;
  }
  if (!st.isFile() || st.size > 64 * 1024) return "foreign";
  const text = await fs.readFile(file, "utf8");
  return text.split("\n")[1]?.startsWith(WRAPPER_MARK) === true ? "ours" : "foreign";
}

/** Is `dir` one of PATH's folders (compared by real path); and the first `piper-link` PATH finds, if any. */
async function onPath(dir: string, env: NodeJS.ProcessEnv): Promise<{ onPath: boolean; first: string | null }> {
  const real = async (p: string): Promise<string> => fs.realpath(p).catch(() => path.resolve(p));
  const target = await real(dir);
  let found = false;
  let first: string | null = null;
  for (const entry of (env["PATH"] ?? "").split(path.delimiter)) {
    if (entry === "" || !path.isAbsolute(entry)) continue;
    if ((await real(entry)) === target) found = true;
    if (first === null) {
      const candidate = path.join(entry, "piper-link");
      if (
        await fs.access(candidate, fsConstants.X_OK).then(
          () => true,
          () => false,
        )
      )
        first = candidate;
    }
  }
  return { onPath: found, first };
}

/** The result of `install-cli`, as `--json` prints it. */
export interface InstallCliResult {
  file: string;
  /** What happened: written (new or updated), removed, or nothing to remove. */
  action: "installed" | "removed" | "absent";
  command: string;
  script: string;
  /** Whether the folder is on this shell's PATH. */
  onPath: boolean;
  /** Another `piper-link` that PATH finds before this one; null when none. */
  shadowedBy: string | null;
}

/**
 * Writes (or with `remove`, deletes) the `piper-link` wrapper in `dir`. A file there that this
 * command did not write (another program, an `npm link` symlink, a folder) is left alone: a
 * `conflict` error naming it. Errors: `conflict`, `storage_unavailable`.
 */
export async function installCli(
  dir: string,
  remove: boolean,
  env: NodeJS.ProcessEnv = process.env,
): Promise<InstallCliResult> {
  const file = path.join(dir, "piper-link");
  const { command, script } = cliCommand();
  const at = await whatIsAt(file);
  if (at === "foreign") {
    throw new LinkError(
      "conflict",
      `${file} exists and was not written by \`piper-link install-cli\`; it is left as it is. Remove or rename it yourself, or choose another folder with --dir.`,
    );
  }
  let action: InstallCliResult["action"];
  if (remove) {
    if (at === "ours") await fs.rm(file);
    action = at === "ours" ? "removed" : "absent";
  } else {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(tmp, wrapperScript(command, script), { mode: 0o755, flag: "wx" });
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw storageError(err, dir) ?? err;
    }
    action = "installed";
  }
  const path_ = await onPath(dir, env);
  return {
    file,
    action,
    command,
    script,
    onPath: path_.onPath,
    shadowedBy: path_.first !== null && path_.first !== file ? path_.first : null,
  };
}

/** The sentences `install-cli` prints for a person. */
export function describeInstall(r: InstallCliResult): string[] {
  const dir = path.dirname(r.file);
  if (r.action === "absent") return [`Nothing to remove: ${r.file} does not exist.`];
  if (r.action === "removed") return [`Removed ${r.file}.`];
  const lines = [`Installed ${r.file}: it runs ${r.script} with ${r.command}.`];
  if (r.onPath) lines.push(`${dir} is on your PATH: \`piper-link\` works in any folder.`);
  else {
    const home = process.env["HOME"] ?? os.homedir();
    const shown = dir.startsWith(`${home}/`) ? `$HOME/${dir.slice(home.length + 1)}` : dir;
    lines.push(
      `${dir} is not on your PATH yet. Add it, then open a new terminal:`,
      `  echo 'export PATH="${shown}:$PATH"' >> ~/.profile`,
    );
  }
  if (r.shadowedBy !== null)
    lines.push(
      `Note: PATH finds ${r.shadowedBy} first; remove it (\`npm unlink -g piper-link\` if \`npm link\` made it) or put ${dir} before it.`,
    );
  return lines;
}

/** Registers `piper-link install-cli`. */
export function addInstallCliCommand(program: Command, run: Runner): void {
  program
    .command("install-cli")
    .description(
      "put `piper-link` on your PATH: a small script in ~/.local/bin that runs this checkout (no npm link, no registry)",
    )
    .option("--dir <dir>", "the folder to write it to (default $XDG_BIN_HOME or ~/.local/bin)")
    .option("--remove", "delete the script this command wrote")
    .option("--json", "print the result as JSON")
    .action(async (o: { dir?: string; remove?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const dir = path.resolve(o.dir ?? userBinDir());
        const result = await installCli(dir, o.remove === true);
        out.result(result, describeInstall(result));
        return ExitCode.ok;
      }, o.json === true);
    });
}

/**
 * Whom a connection asks for (`hello.actingFor`, issue 13 item 6): honoured only when the peer is
 * Piper Link's own command (this install's `bin/piper-link.js` or its compiled CLI, as the OS
 * reports the process's script), never because an agent says so.
 * - `piper-link run` names the command it is about to start, so a grant binds to that command
 *   (executable + script + working directory) and not to `piper-link run` itself; the process and
 *   terminal session stay those of the `run` process, which lives exactly as long as the command.
 * A program that loads its own code into that command (NODE_OPTIONS, --require…) is not honoured.
 * - `piper-link mcp` asks for its parent, the MCP client that started it (Claude Code, an editor),
 *   and `piper-link call` for the script or shell that runs it: the Link reads that process from
 *   the OS itself. `mcp` asks past launchers (`pastLaunchers`): a client that starts it through
 *   `sh -c 'piper-link mcp'` or `npx piper-link mcp` is still the program named, not npx's shell.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ActingFor } from "../../../shared/protocol.js";
import { isShared, type PeerProcess } from "../../../shared/process.js";
import { codeLoads, readCommand } from "./command-line.js";
import { programHash } from "./content-hash.js";
import { parseEnviron } from "./proc-linux.js";

/** This install's root: the module sits at `<root>/{src,dist}/main/core/process/`. */
const INSTALL_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

function realpathOrSelf(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

/** The scripts a process of Piper Link's own CLI runs (real paths), for this install. */
export function ownCommandScripts(root = INSTALL_ROOT): string[] {
  return [path.join(root, "bin", "piper-link.js"), path.join(root, "dist", "main", "cli", "main.js")].map(
    realpathOrSelf,
  );
}

/** Environment variables that load other code into a Node process (or any dynamically linked one). */
const CODE_LOADING_ENV = ["NODE_OPTIONS", "LD_PRELOAD", "LD_AUDIT"];

/**
 * Is `peer` Piper Link's own CLI, running only its own code: a Node process whose first argument is
 * this install's entry (no `--require`, `--import`, `--inspect`… before it) and whose environment
 * loads nothing else (no NODE_OPTIONS, LD_PRELOAD…; read from /proc/<pid>/environ, which only the
 * same user can read). A same-user program could otherwise load code into `piper-link run` and make
 * it claim another program's identity. `environ` reads a process's environment (null: unreadable).
 */
export function isOwnCommand(
  peer: PeerProcess,
  scripts = ownCommandScripts(),
  environ: (pid: number) => string | null = readEnviron,
): boolean {
  // The claimant must be the only holder of its connection: with a shared socket, whoever else holds
  // it could be the one speaking, under the command's name.
  if (isShared(peer)) return false;
  // Anything the Link found loading into the command (options, NODE_OPTIONS, LD_PRELOAD…) disqualifies it.
  if ((peer.loads ?? []).length > 0) return false;
  const script = peer.script ?? null;
  if (script === null || !scripts.includes(realpathOrSelf(script))) return false;
  const argv = peer.commandLine ?? [];
  const first = argv[1];
  if (first === undefined || realpathOrSelf(path.resolve(peer.cwd ?? "/", first)) !== realpathOrSelf(script))
    return false;
  const env = environ(peer.pid);
  if (env === null) return false;
  return !env
    .split("\0")
    .some((entry) => CODE_LOADING_ENV.some((name) => entry.startsWith(`${name}=`) && entry.length > name.length + 1));
}

/** A process's environment as /proc gives it (NUL-separated), or null when it cannot be read. */
function readEnviron(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    return null;
  }
}

/**
 * The identity a grant should bind to for `peer` claiming `claim`: the wrapped command or the
 * parent, or null when the claim is not honoured (the peer is not Piper Link's own command, or the
 * parent cannot be read or is no longer the same process). `describe` reads a process from the OS.
 */
export async function actingForIdentity(
  peer: PeerProcess,
  claim: ActingFor,
  describe: (pid: number) => Promise<PeerProcess | null>,
  scripts = ownCommandScripts(),
  environ?: (pid: number) => string | null,
): Promise<PeerProcess | null> {
  const env = (environ ?? readEnviron)(peer.pid);
  if (env === null || !isOwnCommand(peer, scripts, () => env)) return null;
  if (claim.kind === "command") {
    // The command inherits `run`'s environment: what it loads is read from there, with the
    // command's own option grammar, and its content is hashed like any program's.
    const vars = parseEnviron(env);
    const command = readCommand(claim.executable, claim.commandLine, claim.cwd);
    const scriptPath = claim.script !== null && path.isAbsolute(claim.script) ? claim.script : null;
    const contentHash = await programHash(claim.executable, scriptPath);
    return {
      ...peer,
      executable: claim.executable,
      script: claim.script,
      cwd: claim.cwd,
      commandLine: claim.commandLine,
      loads: codeLoads(claim.executable, claim.commandLine, vars, command.options),
      contentHash,
      sharedWith: [],
      unverifiable: null,
    };
  }
  if (claim.pastLaunchers === true) return clientPastLaunchers(peer, describe);
  const parent = peer.parents?.[0];
  if (parent === undefined || parent.pid <= 1) return null;
  const described = await describe(parent.pid);
  if (described === null || described.startTime === null || described.startTime !== parent.startTime) return null;
  return described;
}

/** Shells whose `-c` line can be a launcher (by executable base name). */
const SHELLS = /^(sh|bash|dash|zsh|ksh|mksh|ash)$/;

/** Characters a plain word may hold outside quotes: nothing the shell expands, redirects or chains. */
const PLAIN = /^[A-Za-z0-9_./:@%+,=-]$/;

/**
 * The words of a shell command line that is one plain command (`'piper-link' mcp`, `exec node
 * /x/bin/piper-link.js mcp --client-id a`), with quotes removed; null for anything the shell would
 * do more with: `;`, `&&`, pipes, redirections, `$`, backquotes, globs, `~`, a leading `VAR=value`,
 * an escape, or an unclosed quote. A leading `exec` is dropped (it only replaces the shell).
 */
export function plainCommandWords(line: string): string[] | null {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (c === " " || c === "\t") {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) return null;
      const quoted = line.slice(i + 1, end);
      // Inside double quotes the shell still expands $, ` and \; inside single quotes nothing.
      if (c === '"' && /[$`\\!]/.test(quoted)) return null;
      word = (word ?? "") + quoted;
      i = end;
      continue;
    }
    if (!PLAIN.test(c)) return null;
    word = (word ?? "") + c;
  }
  if (word !== null) words.push(word);
  if (words[0] === "exec") words.shift();
  // `NAME=value cmd` sets the command's environment: more than launching it.
  if (words.length === 0 || /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? "")) return null;
  return words;
}

/**
 * Is the executable that process `pid` runs a system file: owned by root and writable by nobody
 * else (read through /proc/<pid>/exe, the file the process really runs). A copy of a program under
 * a shell's name in a folder the user owns is not a shell.
 */
async function isSystemExecutable(pid: number): Promise<boolean> {
  try {
    const st = await fs.promises.stat(`/proc/${pid}/exe`);
    return st.uid === 0 && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

const sameWords = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((w, i) => w === b[i]);

/** What a launcher is: a shell's `-c` line, or npm's `exec` (npx), which Piper Link cannot verify. */
type LauncherKind = "shell" | "npm";

/**
 * Is `p` a launcher of `child` (the process below it in the chain): a system shell (`sh`, `dash`,
 * `bash`…) started as `<shell> -c '<one plain command>'` loading nothing else, whose command is
 * exactly `child` (its argv, or the script a shebang ran with the same arguments, or `npx`/`npm`
 * when the child is npm itself); or npm's `exec` (`npx`), a Node process whose title is
 * `npm exec …`/`npx …`, when its child is such a shell (npm starts package bins through `sh -c`).
 * Null: `p` is a program of its own.
 */
async function launcherKind(
  p: PeerProcess,
  child: PeerProcess,
  childKind: LauncherKind | "own",
): Promise<LauncherKind | null> {
  const argv = p.commandLine ?? [];
  const childArgv = child.commandLine ?? [];
  const name = path.basename(p.executable ?? "");
  if ((p.loads ?? []).length > 0 || (p.unverifiable ?? null) !== null || isShared(p)) return null;
  if (SHELLS.test(name)) {
    if (argv.length !== 3 || argv[1] !== "-c" || !(await isSystemExecutable(p.pid))) return null;
    const words = plainCommandWords(argv[2] ?? "");
    if (words === null) return null;
    const first = path.basename(words[0] ?? "");
    if (childKind === "npm") return first === "npx" || first === "npm" ? "shell" : null;
    if (sameWords(words, childArgv)) return "shell";
    // A script run by its shebang: the kernel starts `<interpreter> <path the shell found> <args>`.
    const shebang =
      childArgv.length >= 2 &&
      first === path.basename(childArgv[1] ?? "") &&
      sameWords(words.slice(1), childArgv.slice(2));
    return shebang ? "shell" : null;
  }
  if (/^(node|nodejs)$/.test(name) && childKind === "shell") {
    // npm overwrites its command line with its title ("npm exec piper-link mcp"); an unmodified one
    // runs npm-cli.js or npx-cli.js.
    const title = argv[0] ?? "";
    const script = path.basename(p.script ?? "");
    if (
      /^(npm exec|npx)( |$)/.test(title) ||
      script === "npx-cli.js" ||
      (script === "npm-cli.js" && argv.includes("exec"))
    )
      return "npm";
  }
  return null;
}

/** Why a client reached through npm's `exec` gets only once / this-process grants (prompt wording). */
export const THROUGH_NPX =
  "it started Piper Link's MCP server through npx (npm exec), which any program can pose as; configure the server with the command `piper-link mcp --print-config` prints";

/**
 * The MCP client of `peer` (Piper Link's own `mcp`): the first ancestor that is not a launcher
 * (`launcherKind`), each read from the OS and checked to be the same process the peer's parent chain
 * named (pid and start time). A client reached through npm's `exec` is named but `unverifiable`
 * (`THROUGH_NPX`): a Node process can take npm's title. Null when the chain cannot be read or ends
 * at pid 1 before a program.
 */
async function clientPastLaunchers(
  peer: PeerProcess,
  describe: (pid: number) => Promise<PeerProcess | null>,
): Promise<PeerProcess | null> {
  let child = peer;
  let childKind: LauncherKind | "own" = "own";
  let throughNpm = false;
  for (const ref of peer.parents ?? []) {
    if (ref.pid <= 1) return null;
    const described = await describe(ref.pid);
    if (described === null || described.startTime === null || described.startTime !== ref.startTime) return null;
    const kind = await launcherKind(described, child, childKind);
    if (kind === null)
      return throughNpm ? { ...described, unverifiable: described.unverifiable ?? THROUGH_NPX } : described;
    throughNpm ||= kind === "npm";
    child = described;
    childKind = kind;
  }
  return null;
}

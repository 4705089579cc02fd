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
 *   the OS itself.
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
  return [path.join(root, "bin", "piper-link.js"), path.join(root, "dist", "main", "cli", "main.js")].map(realpathOrSelf);
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
export function isOwnCommand(peer: PeerProcess, scripts = ownCommandScripts(), environ: (pid: number) => string | null = readEnviron): boolean {
  // The claimant must be the only holder of its connection: with a shared socket, whoever else holds
  // it could be the one speaking, under the command's name.
  if (isShared(peer)) return false;
  // Anything the Link found loading into the command (options, NODE_OPTIONS, LD_PRELOAD…) disqualifies it.
  if ((peer.loads ?? []).length > 0) return false;
  const script = peer.script ?? null;
  if (script === null || !scripts.includes(realpathOrSelf(script))) return false;
  const argv = peer.commandLine ?? [];
  const first = argv[1];
  if (first === undefined || realpathOrSelf(path.resolve(peer.cwd ?? "/", first)) !== realpathOrSelf(script)) return false;
  const env = environ(peer.pid);
  if (env === null) return false;
  return !env.split("\0").some((entry) => CODE_LOADING_ENV.some((name) => entry.startsWith(`${name}=`) && entry.length > name.length + 1));
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
  const parent = peer.parents?.[0];
  if (parent === undefined || parent.pid <= 1) return null;
  const described = await describe(parent.pid);
  if (described === null || described.startTime === null || described.startTime !== parent.startTime) return null;
  return described;
}

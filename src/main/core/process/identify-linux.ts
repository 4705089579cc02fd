/**
 * The program identity a grant may bind to (Linux): the process as /proc describes it, what it loads,
 * its content hash, whether a relative script path can be trusted; and the re-check of that identity
 * before each use (the same process running the same program).
 */
import fs from "node:fs/promises";
import path from "node:path";
import type { PeerProcess } from "../../../shared/process.js";
import { codeLoads, readCommand } from "./command-line.js";
import { programHash, scriptFile } from "./content-hash.js";
import { describeLinuxProcess } from "./describe-linux.js";
import { batchedFingerprint, fingerprint, knownFingerprint, rememberFingerprint } from "./fingerprint-linux.js";
import { parseEnviron, parseStat, readlinkOrNull, readOrNull } from "./proc-linux.js";

/** Are `a` and `b` the same directory (same device and inode)? False when either cannot be read. */
async function sameDirectory(a: string | undefined, b: string): Promise<boolean> {
  if (a === undefined || !path.isAbsolute(a)) return false;
  try {
    const [x, y] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Reads the identity a grant may bind to (Linux): `describeLinuxProcess` plus what the program
 * loads (`codeLoads`, from /proc/<pid>/cmdline and /proc/<pid>/environ), its content hash
 * (`programHash`), and whether a relative script path can be trusted: the kernel keeps no record of
 * the folder a process started in, so a relative script counts only when the environment's `PWD`
 * (set by whoever started the process, as shells do) names the current cwd; else the program is
 * `unverifiable` (a process that changed folder before connecting would otherwise pass as the script
 * of the folder it moved to). Null when the executable, command line, environment, cwd or start
 * time cannot be read (another user's or a non-dumpable process, one that exited, another PID
 * namespace), or when the pid named another process by the end of the read: such a peer is
 * unidentified, never some program.
 */
export async function identifyLinuxProcess(pid: number, procRoot = "/proc"): Promise<PeerProcess | null> {
  const dir = path.join(procRoot, String(pid));
  const [base, environText] = await Promise.all([describeLinuxProcess(pid, procRoot), readOrNull(path.join(dir, "environ"))]);
  const { executable, commandLine, cwd, startTime } = base;
  if (executable === null || commandLine === null || cwd === null || startTime === null || environText === null) return null;
  const env = parseEnviron(environText);
  const command = readCommand(executable, commandLine, cwd);
  const loads = codeLoads(executable, commandLine, env, command.options);
  let unverifiable: string | null = null;
  if (command.relativeScript !== null && !(await sameDirectory(env.get("PWD"), cwd))) {
    unverifiable = `it runs ${command.relativeScript} by a relative path, and Piper Link cannot confirm the folder it was started from (start it by its full path, or from a shell in that folder)`;
  }
  const contentHash = await programHash(path.join(dir, "exe"), await scriptFile(command.script, cwd, env));
  const identity: PeerProcess = { ...base, script: command.script, loads, contentHash, sharedWith: [], unverifiable };
  const print = await fingerprint(identity, procRoot);
  // Read again after everything else: a process that exec'd or exited meanwhile is not described
  // with a mix of two programs' facts.
  const again = await readOrNull(path.join(dir, "stat"));
  if (print === null || again === null || parseStat(again)?.startTime !== startTime) return null;
  const [cmdAgain, exeAgain] = await Promise.all([readOrNull(path.join(dir, "cmdline")), readlinkOrNull(path.join(dir, "exe"))]);
  if (cmdAgain === null || cmdAgain.split("\0").filter((x) => x.length > 0).join("\0") !== commandLine.join("\0") || exeAgain !== executable) return null;
  rememberFingerprint(identity, print);
  return identity;
}

/**
 * Checks that connection's identity `p` still describes the process: the same process (pid and
 * start time: the equivalent of a pidfd, which Node cannot hold) running the same program. Returns
 * `p` itself while nothing changed (a few reads, no hashing), a fresh identity when the program
 * changed (it exec'd another program, its script file or environment changed, its session leader
 * exited), or null when the process is gone, is another process, or can no longer be read. Other
 * holders of the connection stay named (`sharedWith`).
 */
export async function recheckLinuxProcess(p: PeerProcess, procRoot = "/proc"): Promise<PeerProcess | null> {
  const known = knownFingerprint(p);
  if (known !== undefined && (await batchedFingerprint(p, procRoot)) === known) return p;
  const now = await identifyLinuxProcess(p.pid, procRoot);
  if (now === null || now.startTime !== p.startTime) return null;
  const fresh: PeerProcess = { ...now, sharedWith: p.sharedWith ?? [] };
  const print = knownFingerprint(now);
  if (print !== undefined) rememberFingerprint(fresh, print);
  return fresh;
}

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
  const [base, environText] = await Promise.all([
    describeLinuxProcess(pid, procRoot),
    readOrNull(path.join(dir, "environ")),
  ]);
  const { executable, commandLine, cwd, startTime } = base;
  if (executable === null || commandLine === null || cwd === null || startTime === null || environText === null)
    return null;
  const env = parseEnviron(environText);
  const command = readCommand(executable, commandLine, cwd);
  const loads = codeLoads(executable, commandLine, env, command.options);
  let unverifiable: string | null = null;
  if (command.relativeScript !== null && !(await sameDirectory(env.get("PWD"), cwd))) {
    unverifiable = `it runs ${command.relativeScript} by a relative path, and Piper Link cannot confirm the folder it was started from (start it by its full path, or from a shell in that folder)`;
  }
  const file = await scriptFile(command.script, cwd, env);
  const contentHash = await programHash(path.join(dir, "exe"), file);
  // A script changed after its process started is not what the process runs (it may have put the
  // approved text back after loading its own): the hash cannot vouch for it.
  if (unverifiable === null && file !== null && (await changedSinceStart(file, startTime, procRoot))) {
    unverifiable = `its script ${file} changed after it started, so Piper Link cannot tell what it runs (start it again)`;
  }
  const venv = /^python/.test(path.basename(executable)) ? await pythonVenv(commandLine[0] ?? "", cwd, env) : null;
  const allLoads = venv === null ? loads : [...loads, `venv=${venv}`];
  const identity: PeerProcess = {
    ...base,
    script: command.script,
    loads: allLoads,
    contentHash,
    sharedWith: [],
    unverifiable,
  };
  const print = await fingerprint(identity, procRoot);
  // Read again after everything else: a process that exec'd or exited meanwhile is not described
  // with a mix of two programs' facts.
  const again = await readOrNull(path.join(dir, "stat"));
  if (print === null || again === null || parseStat(again)?.startTime !== startTime) return null;
  const [cmdAgain, exeAgain] = await Promise.all([
    readOrNull(path.join(dir, "cmdline")),
    readlinkOrNull(path.join(dir, "exe")),
  ]);
  if (
    cmdAgain === null ||
    cmdAgain
      .split("\0")
      .filter((x) => x.length > 0)
      .join("\0") !== commandLine.join("\0") ||
    exeAgain !== executable
  )
    return null;
  rememberFingerprint(identity, print);
  return identity;
}

/** Seconds since the epoch at boot (/proc/stat `btime`), read once. */
let bootTime: Promise<number | null> | null = null;
/** Clock ticks per second of /proc's start times (USER_HZ: 100 on Linux's common architectures). */
const USER_HZ = 100;

/**
 * True when `file` was modified (mtime or ctime) more than a second after the process started
 * (start time in clock ticks after boot, /proc/<pid>/stat). False when that cannot be told.
 */
async function changedSinceStart(file: string, startTicks: number, procRoot: string): Promise<boolean> {
  bootTime ??= readOrNull(path.join(procRoot, "stat")).then((t) => {
    const m = t === null ? null : /^btime (\d+)$/m.exec(t);
    return m?.[1] === undefined ? null : Number(m[1]);
  });
  const boot = await bootTime;
  if (boot === null) return false;
  const startedMs = (boot + startTicks / USER_HZ) * 1000;
  try {
    const st = await fs.stat(file);
    return Math.max(st.mtimeMs, st.ctimeMs) > startedMs + 1000;
  } catch {
    return false;
  }
}

/**
 * The virtual environment a Python process runs in (its `pyvenv.cfg` decides `sys.prefix` and the
 * site-packages whose .pth files run at start), found from argv[0] as Python finds it: a path, or
 * the first match on the process's PATH. The folder holding pyvenv.cfg, or null.
 */
async function pythonVenv(argv0: string, cwd: string, env: ReadonlyMap<string, string>): Promise<string | null> {
  const candidates = argv0.includes("/")
    ? [path.resolve(cwd, argv0)]
    : (env.get("PATH") ?? "")
        .split(":")
        .filter((d) => d.length > 0)
        .map((d) => path.resolve(cwd, d, argv0));
  for (const candidate of candidates) {
    try {
      await fs.access(candidate);
    } catch {
      continue;
    }
    for (const root of [path.dirname(path.dirname(candidate)), path.dirname(candidate)]) {
      try {
        await fs.access(path.join(root, "pyvenv.cfg"));
        return root;
      } catch {
        // not a venv here
      }
    }
    return null;
  }
  return null;
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

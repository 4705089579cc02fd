/**
 * Finds the local process on the other end of a loopback TCP connection and its program identity
 * (issue 13 item 1): uid, pid + start time, executable, the script an interpreter runs, cwd, terminal
 * session and parent chain, all from the OS, never from the agent. On Linux it reads /proc: the socket
 * inode from /proc/net/tcp{,6} by port pair, then the process holding that inode among
 * /proc/<pid>/fd. Lookups that arrive together share one scan, and pids seen recently are searched
 * first, so a thousand agents connecting at once cost a few scans, not a thousand. On macOS it asks
 * `lsof` for pid, cwd and command line only (uid, script, session and parents are null there;
 * untested here). Elsewhere, or when the process belongs to another user, the answer is `null`.
 *
 * It also answers the cheaper question the loopback guard asks of every connection (issue 13 item 2):
 * which uid owns the peer's socket, from the uid column of /proc/net/tcp{,6}, without any pid scan.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { findSocketUid, parseSocketLine, peerLineKeys, type SocketEnds } from "../../../shared/socket-owner.js";
import { promisify } from "node:util";
import { INLINE_SCRIPT, type PeerProcess, type ProcessRef } from "../../../shared/process.js";

const execFileAsync = promisify(execFile);

export interface PeerResolver {
  /** The process on the peer's end of the connection `ends` (both endpoints, as the Link's socket names them). */
  lookup(ends: SocketEnds): Promise<PeerProcess | null>;
}

interface Pending {
  ends: SocketEnds;
  resolve: (p: PeerProcess | null) => void;
}

/**
 * Parses /proc/net/tcp or tcp6 into "local remote" (both endpoints in /proc's hex, see
 * `peerLineKeys`) -> socket inode.
 */
export function parseProcNetTcp(text: string, into = new Map<string, string>()): Map<string, string> {
  for (const raw of text.split("\n").slice(1)) {
    const line = parseSocketLine(raw);
    if (line !== null && line.inode !== "0") into.set(line.key, line.inode);
  }
  return into;
}

async function readOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch {
    return null;
  }
}

async function readlinkOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readlink(file);
  } catch {
    return null;
  }
}

/** Field 22 of /proc/<pid>/stat: start time in clock ticks after boot. The comm field may hold spaces. */
export function parseStartTime(stat: string): number | null {
  return parseStat(stat)?.startTime ?? null;
}

/** The fields of /proc/<pid>/stat this module needs (proc(5)); null when the text is not a stat line. */
export interface StatFields {
  /** Field 4. */
  ppid: number;
  /** Field 6: the session id, which is the session leader's pid. */
  session: number;
  /** Field 22: clock ticks after boot. */
  startTime: number;
}

export function parseStat(stat: string): StatFields | null {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  // After the comm field: state is field 3, so field N is at index N - 3.
  const after = stat.slice(close + 2).split(" ");
  const ppid = Number(after[1]);
  const session = Number(after[3]);
  const startTime = Number(after[19]);
  if (![ppid, session, startTime].every((n) => Number.isInteger(n))) return null;
  return { ppid, session, startTime };
}

/** The effective uid from /proc/<pid>/status (`Uid:` real, effective, saved, filesystem). */
export function parseStatusUid(status: string): number | null {
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  return m?.[1] === undefined ? null : Number(m[1]);
}

/**
 * Interpreters whose identity is the script they run, by executable base name. Each lists its
 * options that take a separate value (so the value is not mistaken for the script), those that make
 * the rest of the command line inline code, and those that name a module.
 */
interface InterpreterRules {
  valued: ReadonlySet<string>;
  inline: ReadonlySet<string>;
  module: ReadonlySet<string>;
  /** Subcommands before the script (`deno run x.ts`, `bun run x.ts`). */
  subcommands: ReadonlySet<string>;
}

const set = (...items: string[]): ReadonlySet<string> => new Set(items);
const SHELL: InterpreterRules = { valued: set("-o", "+o", "-O", "+O", "--rcfile", "--init-file"), inline: set("-c"), module: set(), subcommands: set() };
const INTERPRETERS: ReadonlyArray<[RegExp, InterpreterRules]> = [
  [
    /^(node|nodejs)$/,
    {
      valued: set("-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--input-type", "--title", "--env-file", "--inspect-port", "--debug-port", "--disable-warning", "--redirect-warnings", "--stack-trace-limit", "--watch-path"),
      inline: set("-e", "--eval", "-p", "--print"),
      module: set(),
      subcommands: set(),
    },
  ],
  [/^python(\d+(\.\d+)?)?$/, { valued: set("-W", "-X", "--check-hash-based-pycs"), inline: set("-c"), module: set("-m"), subcommands: set() }],
  [/^deno$/, { valued: set("-c", "--config", "--import-map", "-L", "--log-level", "--location", "--seed", "--v8-flags", "--cert", "--env-file"), inline: set("eval"), module: set(), subcommands: set("run", "serve", "test", "bench", "compile", "check") }],
  [/^bun$/, { valued: set("-r", "--preload", "--cwd", "-c", "--config", "--env-file", "--tsconfig-override", "--conditions"), inline: set("-e", "--eval", "-p", "--print"), module: set(), subcommands: set("run", "test", "x") }],
  [/^ruby(\d+(\.\d+)*)?$/, { valued: set("-I", "-r", "-C", "-E", "--encoding"), inline: set("-e"), module: set(), subcommands: set() }],
  [/^perl(\d+(\.\d+)*)?$/, { valued: set("-I", "-M", "-m"), inline: set("-e", "-E"), module: set(), subcommands: set() }],
  [/^(php(\d+(\.\d+)*)?)$/, { valued: set("-c", "-d", "-z"), inline: set("-r"), module: set(), subcommands: set() }],
  [/^(sh|bash|zsh|dash|ksh|mksh|fish|ash)$/, SHELL],
];

/**
 * The script or entry point an interpreter runs, from its executable and argv: the first argument
 * that is not an option (nor an option's value), resolved against `cwd` to an absolute path when it
 * names a file. `python -m mod` gives `-m mod`; code on the command line (`node -e`, `sh -c`,
 * `python -c`, `deno eval`) gives `[inline]`; a bare word after `bun run` / `deno task` that is not a
 * path (a package.json script name) is kept as written. Null for programs that are not known
 * interpreters and for interpreters with no script (a REPL, or code read from stdin).
 */
export function entryPoint(executable: string | null, argv: readonly string[], cwd: string | null): string | null {
  const name = path.basename(executable ?? argv[0] ?? "");
  const rules = INTERPRETERS.find(([re]) => re.test(name))?.[1] ?? (argv[0] !== undefined ? INTERPRETERS.find(([re]) => re.test(path.basename(argv[0] ?? "")))?.[1] : undefined);
  if (rules === undefined) return null;
  const absolute = (arg: string): string => (cwd !== null && !path.isAbsolute(arg) ? path.resolve(cwd, arg) : arg);
  let subcommandSeen = false;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      const next = argv[i + 1];
      return next === undefined ? null : absolute(next);
    }
    // Short flags may be grouped, the inline one last: `python -uc CODE`, `bash -ec CMD`, `perl -ne CODE`.
    const grouped = /^-[a-zA-Z]{2,}$/.test(arg) && [...rules.inline].some((o) => /^-[a-zA-Z]$/.test(o) && arg.endsWith(o.slice(1)));
    if (rules.inline.has(arg) || grouped) {
      return INLINE_SCRIPT;
    }
    if (rules.module.has(arg)) {
      const mod = argv[i + 1];
      return mod === undefined ? null : `-m ${mod}`;
    }
    // python -mhttp.server: the module glued to the option.
    const glued = [...rules.module].find((o) => arg.startsWith(o) && arg.length > o.length);
    if (glued !== undefined) return `-m ${arg.slice(glued.length)}`;
    if (rules.valued.has(arg)) {
      i += 1;
      continue;
    }
    if (arg === "-") return null;
    if (arg.startsWith("-") || arg.startsWith("+")) continue;
    if (!subcommandSeen && rules.subcommands.has(arg)) {
      subcommandSeen = true;
      continue;
    }
    if (name === "deno" && arg === "task") return `task ${argv[i + 1] ?? ""}`.trim();
    // `bun run dev` names a package.json script, not a file: keep the word as written.
    const looksLikePath = arg.includes("/") || /\.[A-Za-z0-9]+$/.test(arg);
    if (subcommandSeen && !looksLikePath) return arg;
    return absolute(arg);
  }
  return null;
}

async function describeRef(pid: number, procRoot: string): Promise<{ ref: ProcessRef; stat: StatFields | null }> {
  const dir = path.join(procRoot, String(pid));
  const [exe, statText] = await Promise.all([readlinkOrNull(path.join(dir, "exe")), readOrNull(path.join(dir, "stat"))]);
  const stat = statText === null ? null : parseStat(statText);
  return { ref: { pid, startTime: stat?.startTime ?? null, executable: exe }, stat };
}

/** How many parents the identity lists at most (the chain stops earlier at pid 1). */
export const MAX_PARENTS = 8;

/**
 * Describes one process from /proc (Linux): every field of `PeerProcess`. Fields that cannot be read
 * (the process exited meanwhile, or belongs to another user) are null; never throws for that.
 */
export async function describeLinuxProcess(pid: number, procRoot = "/proc"): Promise<PeerProcess> {
  const dir = path.join(procRoot, String(pid));
  const [exe, cwd, cmdline, statText, status] = await Promise.all([
    readlinkOrNull(path.join(dir, "exe")),
    readlinkOrNull(path.join(dir, "cwd")),
    readOrNull(path.join(dir, "cmdline")),
    readOrNull(path.join(dir, "stat")),
    readOrNull(path.join(dir, "status")),
  ]);
  const stat = statText === null ? null : parseStat(statText);
  const commandLine = cmdline === null ? null : cmdline.split("\0").filter((s) => s.length > 0);
  const parents: ProcessRef[] = [];
  let ppid = stat?.ppid ?? 0;
  while (ppid > 0 && parents.length < MAX_PARENTS) {
    const { ref, stat: parentStat } = await describeRef(ppid, procRoot);
    parents.push(ref);
    if (ppid === 1 || parentStat === null) break;
    ppid = parentStat.ppid;
  }
  // proc(5): the session id reads 0 when the session leader lives outside this PID namespace (a
  // container entered without setsid, CI runners). That is no session anyone here can name or watch:
  // every process of the container shares it, so it binds nothing and counts as none.
  const sessionId = stat === null || stat.session <= 0 ? null : stat.session;
  let sessionLeader: ProcessRef | null = null;
  if (sessionId !== null && sessionId > 0) {
    const leader = sessionId === pid ? null : await describeRef(sessionId, procRoot);
    // A leader that exited leaves its sid behind; its pid may since name an unrelated process, whose
    // own session would then differ, so only a process that still leads this session counts.
    if (sessionId === pid) sessionLeader = { pid, startTime: stat?.startTime ?? null, executable: exe };
    else if (leader !== null && leader.stat?.session === sessionId) sessionLeader = leader.ref;
  }
  return {
    pid,
    executable: exe,
    cwd,
    commandLine,
    startTime: stat?.startTime ?? null,
    uid: status === null ? null : parseStatusUid(status),
    script: commandLine === null ? null : entryPoint(exe, commandLine, cwd),
    sessionId,
    sessionLeader,
    parents: stat === null ? null : parents,
  };
}

/**
 * Who owns the peer's socket: `{ uid }` when /proc/net/tcp{,6} lists the peer's end; `{ uid: null,
 * reason: "not_found" }` when those files are readable but do not (the caller fails closed);
 * `{ uid: null, reason: "unsupported" }` when they cannot be read (not Linux, /proc not mounted).
 */
export type SocketOwner = { uid: number } | { uid: null; reason: "not_found" | "unsupported" };

export { findSocketUid } from "../../../shared/socket-owner.js";

/** The reads of /proc/net/tcp{,6} that lookups can still join, per proc root (see `socketTables`). */
const tableReads = new Map<string, { joining: Promise<(string | null)[]> | null; inFlight: Promise<unknown> }>();

/**
 * The text of `<procRoot>/net/tcp` and `net/tcp6` (null for one that cannot be read), read after this
 * call: a connection accepted before the call is listed. Calls that arrive while a read is queued
 * share it, and a read starts only once the previous one ended, so a thousand connections arriving
 * together cost a few reads rather than a thousand (each file lists every socket of the machine:
 * about 150 bytes a line, 300 KB with a thousand agents connected).
 */
function socketTables(procRoot: string): Promise<(string | null)[]> {
  let reads = tableReads.get(procRoot);
  if (reads === undefined) {
    reads = { joining: null, inFlight: Promise.resolve() };
    tableReads.set(procRoot, reads);
  }
  if (reads.joining !== null) return reads.joining;
  const state = reads;
  // Starts after the read in flight (which may predate the caller's connection) and after this
  // tick's callers joined; from then on, new callers queue the next read.
  const read: Promise<(string | null)[]> = state.inFlight.then(() => {
    if (state.joining === read) state.joining = null;
    return Promise.all(["net/tcp", "net/tcp6"].map((file) => readOrNull(path.join(procRoot, file))));
  });
  state.joining = read;
  state.inFlight = read.catch(() => undefined);
  return read;
}

/** Looks up the owner uid of a loopback peer's socket (see `SocketOwner`); `ends` null (socket gone) is not found. */
export async function socketOwner(ends: SocketEnds | null, procRoot = "/proc"): Promise<SocketOwner> {
  const texts = await socketTables(procRoot);
  for (const text of texts) {
    const uid = text === null || ends === null ? null : findSocketUid(text, ends);
    if (uid !== null) return { uid };
  }
  return { uid: null, reason: texts.some((t) => t !== null) ? "not_found" : "unsupported" };
}

export function createProcPeerResolver(procRoot = "/proc"): PeerResolver {
  let queue: Pending[] = [];
  let scanning = false;
  /** Recently matched pids, most recent last; searched before the full process list. */
  const recent: number[] = [];

  async function findOwners(wanted: Map<string, Pending[]>): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const searchPid = async (pid: number): Promise<void> => {
      let fds: string[];
      try {
        fds = await fs.readdir(path.join(procRoot, String(pid), "fd"));
      } catch {
        return;
      }
      for (const fd of fds) {
        const target = await readlinkOrNull(path.join(procRoot, String(pid), "fd", fd));
        const m = target === null ? null : /^socket:\[(\d+)\]$/.exec(target);
        if (m?.[1] && wanted.has(m[1]) && !found.has(m[1])) found.set(m[1], pid);
      }
    };
    for (const pid of [...recent].reverse()) {
      await searchPid(pid);
      if (found.size === wanted.size) return found;
    }
    const all = (await fs.readdir(procRoot))
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((pid) => !recent.includes(pid))
      .sort((a, b) => b - a);
    // A few pids at a time: enough to hide latency, few enough not to exhaust file handles.
    for (let i = 0; i < all.length && found.size < wanted.size; i += 16) {
      await Promise.all(all.slice(i, i + 16).map(searchPid));
    }
    return found;
  }

  async function scan(batch: Pending[]): Promise<void> {
    const sockets = new Map<string, string>();
    for (const text of await socketTables(procRoot)) if (text !== null) parseProcNetTcp(text, sockets);
    const wanted = new Map<string, Pending[]>();
    for (const p of batch) {
      const inode = peerLineKeys(p.ends)
        .map((key) => sockets.get(key))
        .find((i) => i !== undefined);
      if (inode === undefined) p.resolve(null);
      else wanted.set(inode, [...(wanted.get(inode) ?? []), p]);
    }
    if (wanted.size === 0) return;
    const owners = await findOwners(wanted);
    for (const [inode, waiters] of wanted) {
      const pid = owners.get(inode);
      const info = pid === undefined ? null : await describeLinuxProcess(pid, procRoot);
      if (pid !== undefined) {
        const at = recent.indexOf(pid);
        if (at >= 0) recent.splice(at, 1);
        recent.push(pid);
        if (recent.length > 64) recent.shift();
      }
      for (const w of waiters) w.resolve(info);
    }
  }

  async function drain(): Promise<void> {
    if (scanning) return;
    scanning = true;
    try {
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        try {
          await scan(batch);
        } catch {
          for (const p of batch) p.resolve(null);
        }
      }
    } finally {
      scanning = false;
    }
  }

  return {
    lookup(ends) {
      return new Promise((resolve) => {
        queue.push({ ends, resolve });
        // Let every connection accepted in this turn of the event loop join the same scan.
        setImmediate(() => void drain());
      });
    },
  };
}

/** macOS: `lsof` names both ends of the connection; the peer is the pid that is not us. */
export function createLsofPeerResolver(): PeerResolver {
  return {
    async lookup({ peerPort, localPort: linkPort }) {
      try {
        const { stdout } = await execFileAsync("lsof", ["-nP", `-iTCP:${peerPort}`, "-sTCP:ESTABLISHED", "-FpcnR"], {
          timeout: 2000,
        });
        let current: number | null = null;
        let pid: number | null = null;
        for (const line of stdout.split("\n")) {
          if (line.startsWith("p")) current = Number(line.slice(1));
          if (line.startsWith("n") && line.includes(`:${peerPort}->`) && line.endsWith(`:${linkPort}`)) {
            pid = current;
            break;
          }
        }
        if (pid === null || !Number.isFinite(pid)) return null;
        const { stdout: cwdOut } = await execFileAsync("lsof", ["-a", "-p", String(pid), "-d", "cwd", "-Fn"], { timeout: 2000 });
        const cwd = cwdOut.split("\n").find((l) => l.startsWith("n"))?.slice(1) ?? null;
        const { stdout: cmd } = await execFileAsync("ps", ["-o", "command=", "-p", String(pid)], { timeout: 2000 });
        const commandLine = cmd.trim().split(/\s+/);
        return { pid, executable: commandLine[0] ?? null, cwd, commandLine, startTime: null, uid: null, script: null, sessionId: null, sessionLeader: null, parents: null };
      } catch {
        return null;
      }
    },
  };
}

export function createPeerResolver(): PeerResolver {
  if (process.platform === "linux") return createProcPeerResolver();
  if (process.platform === "darwin") return createLsofPeerResolver();
  return { lookup: () => Promise.resolve(null) };
}

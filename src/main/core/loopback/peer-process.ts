/**
 * Finds the local process on the other end of a loopback TCP connection and its program identity
 * (issue 13 item 1): uid, pid + start time, executable, the script an interpreter runs, cwd, terminal
 * session and parent chain, what the interpreter was told to load, and the program's content hash, all
 * from the OS, never from the agent. On Linux it reads /proc: the socket inode from /proc/net/tcp{,6}
 * by port pair, then every process holding that inode among /proc/<pid>/fd (a connection held by
 * several processes belongs to none of them). Lookups that arrive together share one scan, so a
 * thousand agents connecting at once cost a few scans, not a thousand. On macOS it asks
 * `lsof` for pid, cwd and command line only (uid, script, session and parents are null there;
 * untested here). Elsewhere, or when the process belongs to another user, the answer is `null`.
 *
 * It also answers the cheaper question the loopback guard asks of every connection (issue 13 item 2):
 * which uid owns the peer's socket, from the uid column of /proc/net/tcp{,6}, without any pid scan.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { findSocketUid, parseSocketLine, peerLineKeys, type SocketEnds } from "../../../shared/socket-owner.js";
import { promisify } from "node:util";
import { INLINE_SCRIPT, type PeerProcess, type ProcessRef } from "../../../shared/process.js";

const execFileAsync = promisify(execFile);

export interface PeerResolver {
  /** The process on the peer's end of the connection `ends` (both endpoints, as the Link's socket names them). */
  lookup(ends: SocketEnds): Promise<PeerProcess | null>;
  /**
   * Checks an identity this resolver gave (see `recheckLinuxProcess`) before each use: the same
   * identity while nothing changed, a fresh one when the program changed, null when the process is
   * gone. Absent: identities are not re-checked (platforms without /proc).
   */
  recheck?(p: PeerProcess): Promise<PeerProcess | null>;
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
 * Interpreters whose identity is the script they run, by executable base name, with their option
 * grammar: options that take a value (`-r x`, `--require=x`, glued `-rx` where the interpreter
 * accepts it), those that make the command line inline code, those that name a module, and those
 * that load other code into the program (part of the program: `loads`). `env` names the variables
 * that load code into it (`NODE_OPTIONS`, `PYTHONPATH`…); `envPrefixes` whole families of them.
 */
interface InterpreterRules {
  valued: ReadonlySet<string>;
  inline: ReadonlySet<string>;
  module: ReadonlySet<string>;
  /** Options (of `valued` or flags) that load other code, or change where imports come from. */
  loading: ReadonlySet<string>;
  /** Subcommands before the script (`deno run x.ts`, `bun run x.ts`). */
  subcommands: ReadonlySet<string>;
  /** Short options take their value glued to them and may be grouped (`-uc CODE`, `-cCODE`, `-mpkg`): Python, shells, Perl, Ruby. */
  gluedShort: boolean;
  env: ReadonlySet<string>;
  envPrefixes?: readonly string[];
  /** Flags that make the interpreter ignore its environment variables (`python -E`, `-I`). */
  ignoresEnv?: ReadonlySet<string>;
}

const set = (...items: string[]): ReadonlySet<string> => new Set(items);
const SHELL: InterpreterRules = {
  valued: set("-o", "+o", "-O", "+O", "--rcfile", "--init-file"),
  inline: set("-c"),
  module: set(),
  loading: set("--rcfile", "--init-file"),
  subcommands: set(),
  gluedShort: true,
  env: set("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS"),
  // Exported shell functions replace commands the script runs.
  envPrefixes: ["BASH_FUNC_"],
};
const NODE_LOADING = ["-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--env-file", "--env-file-if-exists", "--experimental-policy", "--experimental-config-file", "--inspect", "--inspect-brk", "--inspect-wait", "--inspect-port", "--debug-port", "--preserve-symlinks", "--preserve-symlinks-main", "--experimental-default-type", "--watch-path"];
const INTERPRETERS: ReadonlyArray<[RegExp, InterpreterRules]> = [
  [
    /^(node|nodejs)$/,
    {
      valued: set("-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--input-type", "--title", "--env-file", "--env-file-if-exists", "--inspect-port", "--debug-port", "--disable-warning", "--redirect-warnings", "--stack-trace-limit", "--watch-path", "--experimental-policy", "--experimental-config-file", "--experimental-default-type"),
      inline: set("-e", "--eval", "-p", "--print"),
      module: set(),
      loading: set(...NODE_LOADING),
      subcommands: set(),
      gluedShort: false,
      env: set("NODE_OPTIONS", "NODE_PATH", "NODE_REPL_EXTERNAL_MODULE"),
    },
  ],
  [
    /^python(\d+(\.\d+)?)?$/,
    {
      valued: set("-W", "-X", "--check-hash-based-pycs"),
      inline: set("-c"),
      module: set("-m"),
      loading: set(),
      subcommands: set(),
      gluedShort: true,
      env: set("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONINSPECT", "PYTHONPLATLIBDIR", "PYTHONEXECUTABLE", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONWARNINGS", "PYTHONBREAKPOINT", "PYTHONDEVMODE"),
      ignoresEnv: set("-E", "-I"),
    },
  ],
  [
    /^deno$/,
    {
      valued: set("-c", "--config", "--import-map", "-L", "--log-level", "--location", "--seed", "--v8-flags", "--cert", "--env-file", "--preload"),
      inline: set("eval"),
      module: set(),
      loading: set("-c", "--config", "--import-map", "--env-file", "--preload", "--inspect", "--inspect-brk", "--inspect-wait"),
      subcommands: set("run", "serve", "test", "bench", "compile", "check"),
      gluedShort: false,
      env: set("DENO_DIR", "DENO_CERT", "DENO_AUTH_TOKENS"),
    },
  ],
  [
    /^bun$/,
    {
      valued: set("-r", "--preload", "--cwd", "-c", "--config", "--env-file", "--tsconfig-override", "--conditions"),
      inline: set("-e", "--eval", "-p", "--print"),
      module: set(),
      loading: set("-r", "--preload", "--cwd", "-c", "--config", "--env-file", "--tsconfig-override", "--conditions", "--inspect", "--inspect-brk", "--inspect-wait"),
      subcommands: set("run", "test", "x"),
      gluedShort: false,
      env: set("NODE_OPTIONS", "NODE_PATH", "BUN_CONFIG_PRELOAD"),
    },
  ],
  [/^ruby(\d+(\.\d+)*)?$/, { valued: set("-I", "-r", "-C", "-E", "--encoding"), inline: set("-e"), module: set(), loading: set("-I", "-r", "-C"), subcommands: set(), gluedShort: true, env: set("RUBYOPT", "RUBYLIB", "RUBYLIB_PREFIX") }],
  [/^perl(\d+(\.\d+)*)?$/, { valued: set("-I", "-M", "-m"), inline: set("-e", "-E"), module: set(), loading: set("-I", "-M", "-m", "-d"), subcommands: set(), gluedShort: true, env: set("PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB") }],
  [/^(php(\d+(\.\d+)*)?)$/, { valued: set("-c", "-d", "-z"), inline: set("-r"), module: set(), loading: set("-c", "-d", "-z"), subcommands: set(), gluedShort: false, env: set("PHPRC", "PHP_INI_SCAN_DIR") }],
  [/^(sh|bash|zsh|dash|ksh|mksh|fish|ash)$/, SHELL],
];

/** Variables that load code into any dynamically linked program (ld.so(8)). */
const LINKER_ENV = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES"];

/** What the command line of a program says it runs and loads (see `readCommand`). */
export interface CommandFacts {
  /** As `entryPoint` reports it. */
  script: string | null;
  /** The script argument as written, when it is a relative path resolved against the cwd; else null. */
  relativeScript: string | null;
  /** Code-loading options from the command line, as written (`--require=/x.cjs`, `-r ./x.cjs`). */
  options: string[];
}

function rulesFor(executable: string | null, argv: readonly string[]): { name: string; rules: InterpreterRules } | null {
  const name = path.basename(executable ?? argv[0] ?? "");
  const byExe = INTERPRETERS.find(([re]) => re.test(name))?.[1];
  if (byExe !== undefined) return { name, rules: byExe };
  const byArg = argv[0] === undefined ? undefined : INTERPRETERS.find(([re]) => re.test(path.basename(argv[0] ?? "")))?.[1];
  return byArg === undefined ? null : { name, rules: byArg };
}

/**
 * Reads an interpreter's command line with its option grammar: the script or entry point it runs
 * (see `entryPoint`) and the options that load other code. Long options may carry their value after
 * `=` (`--eval=CODE`, `--require=./x.cjs`); for interpreters that glue short options (Python, shells,
 * Perl, Ruby) `-cCODE`, `-uc CODE` and `-mpkg` are read as Python reads them. Anything after inline
 * code or the script belongs to the program, not the interpreter.
 */
export function readCommand(executable: string | null, argv: readonly string[], cwd: string | null): CommandFacts {
  const found = rulesFor(executable, argv);
  const none: CommandFacts = { script: null, relativeScript: null, options: [] };
  if (found === null) return none;
  const { name, rules } = found;
  const options: string[] = [];
  const done = (script: string | null, relativeScript: string | null = null): CommandFacts => ({ script, relativeScript, options });
  const file = (arg: string): CommandFacts => {
    if (cwd !== null && !path.isAbsolute(arg)) return done(path.resolve(cwd, arg), arg);
    return done(arg, path.isAbsolute(arg) ? null : arg);
  };
  let subcommandSeen = false;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      const next = argv[i + 1];
      return next === undefined ? done(null) : file(next);
    }
    if (rules.gluedShort && /^-[a-zA-Z]/.test(arg) && !arg.startsWith("--")) {
      // Python's getopt (and sh, perl, ruby): flags may be grouped, and an option that takes a value
      // takes the rest of the argument, or the next argument when nothing follows it.
      let consumedNext = false;
      for (let j = 1; j < arg.length; j++) {
        const opt = `-${arg[j] ?? ""}`;
        const rest = arg.slice(j + 1);
        if (rules.inline.has(opt)) return done(INLINE_SCRIPT);
        if (rules.module.has(opt)) {
          const mod = rest.length > 0 ? rest : argv[i + 1];
          return done(mod === undefined ? null : `-m ${mod}`);
        }
        if (rules.valued.has(opt)) {
          const value = rest.length > 0 ? rest : argv[i + 1];
          if (rest.length === 0) consumedNext = true;
          if (rules.loading.has(opt)) options.push(`${opt} ${value ?? ""}`.trim());
          break;
        }
        if (rules.loading.has(opt)) options.push(opt);
      }
      if (consumedNext) i += 1;
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const option = eq > 0 ? arg.slice(0, eq) : arg;
    const grouped = !rules.gluedShort && /^-[a-zA-Z]{2,}$/.test(arg) && [...rules.inline].some((o) => /^-[a-zA-Z]$/.test(o) && arg.includes(o.slice(1)));
    if (rules.inline.has(option) || grouped) return done(INLINE_SCRIPT);
    if (rules.module.has(option)) {
      const mod = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
      return done(mod === undefined ? null : `-m ${mod}`);
    }
    if (rules.valued.has(option)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
      if (rules.loading.has(option)) options.push(eq > 0 ? arg : `${option} ${value ?? ""}`.trim());
      if (eq < 0) i += 1;
      continue;
    }
    if (arg === "-") return done(null);
    if (arg.startsWith("-") || arg.startsWith("+")) {
      if (rules.loading.has(option) || [...rules.loading].some((o) => o.startsWith("--inspect") && option.startsWith("--inspect"))) options.push(arg);
      continue;
    }
    if (!subcommandSeen && rules.subcommands.has(arg)) {
      subcommandSeen = true;
      continue;
    }
    if (name === "deno" && arg === "task") return done(`task ${argv[i + 1] ?? ""}`.trim());
    // `bun run dev` names a package.json script, not a file: keep the word as written.
    const looksLikePath = arg.includes("/") || /\.[A-Za-z0-9]+$/.test(arg);
    if (subcommandSeen && !looksLikePath) return done(arg);
    return file(arg);
  }
  return done(null);
}

/**
 * The script or entry point an interpreter runs, from its executable and argv: the first argument
 * that is not an option (nor an option's value), resolved against `cwd` to an absolute path when it
 * names a file. `python -m mod` gives `-m mod`; code on the command line (`node -e`, `--eval=…`,
 * `sh -c`, `python -c`, glued `python -cCODE`, `deno eval`) gives `[inline]`; a bare word after
 * `bun run` / `deno task` that is not a path (a package.json script name) is kept as written. Null
 * for programs that are not known interpreters and for interpreters with no script (a REPL, or code
 * read from stdin).
 */
export function entryPoint(executable: string | null, argv: readonly string[], cwd: string | null): string | null {
  return readCommand(executable, argv, cwd).script;
}

/** Parses /proc/<pid>/environ (NUL-separated NAME=value) into a map; the first of a repeated name wins, as getenv(3) finds it. */
export function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    if (!env.has(key)) env.set(key, entry.slice(eq + 1));
  }
  return env;
}

/**
 * Everything that loads other code into the program: its code-loading options (`readCommand`), then
 * the variables of its environment that do so for its interpreter and for the dynamic linker, as
 * `NAME=value`, sorted by name. Empty variables load nothing and are left out.
 */
export function codeLoads(executable: string | null, argv: readonly string[], env: ReadonlyMap<string, string>, options: readonly string[]): string[] {
  const found = rulesFor(executable, argv);
  const ignoresEnv = found?.rules.ignoresEnv !== undefined && argv.slice(1).some((a) => /^-[a-zA-Z]+$/.test(a) && [...(found.rules.ignoresEnv ?? [])].some((f) => a.slice(1).includes(f.slice(1))));
  const names = new Set(LINKER_ENV);
  if (found !== null && !ignoresEnv) for (const n of found.rules.env) names.add(n);
  const prefixes = found?.rules.envPrefixes ?? [];
  const vars = [...env.entries()].filter(([k, v]) => v.length > 0 && (names.has(k) || prefixes.some((p) => k.startsWith(p)))).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [...options, ...vars.map(([k, v]) => `${k}=${v}`)];
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
    script: commandLine === null ? null : readCommand(exe, commandLine, cwd).script,
    sessionId,
    sessionLeader,
    parents: stat === null ? null : parents,
  };
}

/** Content hashes by file identity (device, inode, size, mtime, ctime): each file is read once while unchanged. */
const hashes = new Map<string, Promise<string | null>>();

/**
 * SHA-256 (hex) of the file at `file` (read through /proc/<pid>/exe for an executable, which opens
 * the file the process runs even when its path now names another), or null when it cannot be read.
 * Cached by the file's identity, so a 100 MB interpreter is read once, not on every connection.
 */
export async function fileHash(file: string): Promise<string | null> {
  let st: Stats;
  try {
    st = await fs.stat(file);
  } catch {
    return null;
  }
  if (!st.isFile()) return null;
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  let hit = hashes.get(key);
  if (hit === undefined) {
    hit = new Promise<string | null>((resolve) => {
      const hash = createHash("sha256");
      // Large reads: a 100 MB interpreter in 100 chunks rather than 1,600.
      createReadStream(file, { highWaterMark: 1 << 20 })
        .on("data", (chunk) => hash.update(chunk))
        .on("error", () => resolve(null))
        .on("end", () => resolve(hash.digest("hex")));
    });
    if (hashes.size >= 4096) hashes.clear();
    hashes.set(key, hit);
    // A failed read is not remembered: the next lookup tries again.
    void hit.then((h) => {
      if (h === null) hashes.delete(key);
    });
  }
  return hit;
}

/** The file `python -m mod` runs, looked up where Python looks first (the cwd, then PYTHONPATH); null when elsewhere. */
async function moduleFile(mod: string, cwd: string, env: ReadonlyMap<string, string>): Promise<string | null> {
  if (!/^[A-Za-z_][\w.]*$/.test(mod)) return null;
  const rel = mod.split(".").join("/");
  const dirs = [cwd, ...(env.get("PYTHONPATH") ?? "").split(":").filter((d) => d.length > 0).map((d) => path.resolve(cwd, d))];
  for (const dir of dirs) {
    for (const candidate of [path.join(dir, `${rel}.py`), path.join(dir, rel, "__main__.py")]) {
      try {
        if ((await fs.stat(candidate)).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

/** The script file a program runs (a path, or the file of `-m mod`), or null for inline code, a package script name or none. */
async function scriptFile(script: string | null, cwd: string, env: ReadonlyMap<string, string>): Promise<string | null> {
  if (script === null || script === INLINE_SCRIPT) return null;
  if (script.startsWith("-m ")) return moduleFile(script.slice(3), cwd, env);
  return path.isAbsolute(script) ? script : null;
}

/**
 * The content hash of a program: SHA-256 over the executable's hash and the script file's (empty
 * when it has none). Null when the executable cannot be read, or the script names a file that cannot.
 */
export async function programHash(executableFile: string, script: string | null): Promise<string | null> {
  const [exe, code] = await Promise.all([fileHash(executableFile), script === null ? Promise.resolve("") : fileHash(script)]);
  if (exe === null || code === null) return null;
  return createHash("sha256").update(`exe\0${exe}\0script\0${code}`).digest("hex");
}

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
 * What the re-check compares (`recheckLinuxProcess`): the running executable's file identity (inode
 * and ctime, through /proc/<pid>/exe), the start time, the command line and environment as /proc
 * shows them, the script file's identity, and whether the session leader still runs. Null when
 * any cannot be read.
 */
async function fingerprint(p: PeerProcess, procRoot: string): Promise<string | null> {
  const dir = path.join(procRoot, String(p.pid));
  const file = p.script !== null && p.script !== undefined && path.isAbsolute(p.script) ? p.script : null;
  const leader = p.sessionLeader ?? null;
  const [exe, stat, cmdline, environ, script, leaderStat] = await Promise.all([
    fs.stat(path.join(dir, "exe")).catch(() => null),
    readOrNull(path.join(dir, "stat")),
    readOrNull(path.join(dir, "cmdline")),
    readOrNull(path.join(dir, "environ")),
    file === null ? Promise.resolve(null) : fs.stat(file).catch(() => null),
    leader === null || leader.pid === p.pid ? Promise.resolve(null) : readOrNull(path.join(procRoot, String(leader.pid), "stat")),
  ]);
  if (exe === null || stat === null || cmdline === null || environ === null) return null;
  const leaderAlive = leader === null || leader.pid === p.pid || (leaderStat !== null && parseStat(leaderStat)?.startTime === leader.startTime);
  return createHash("sha256")
    .update(JSON.stringify([exe.dev, exe.ino, exe.ctimeMs, parseStat(stat)?.startTime ?? null, cmdline, environ, script === null ? null : [script.dev, script.ino, script.size, script.mtimeMs, script.ctimeMs], leaderAlive]))
    .digest("hex");
}

/** Re-checks of one process waiting for the next turn of the event loop, by process and what the fingerprint reads. */
const waiting = new Map<string, Promise<string | null>>();

/**
 * `fingerprint`, read once per turn of the event loop for all the re-checks of one process that
 * arrived before the read starts (a process with 200 connections asking at once costs one read,
 * not 200). Sound because a re-check joins only a read that has not started yet: every answer
 * comes from a read made after its request arrived, so an exec before a request is always seen.
 */
function batchedFingerprint(p: PeerProcess, procRoot: string): Promise<string | null> {
  const key = JSON.stringify([procRoot, p.pid, p.startTime, p.script ?? null, p.sessionLeader?.pid ?? null, p.sessionLeader?.startTime ?? null]);
  let read = waiting.get(key);
  if (read === undefined) {
    read = new Promise<string | null>((resolve) => {
      setImmediate(() => {
        waiting.delete(key);
        resolve(fingerprint(p, procRoot));
      });
    });
    waiting.set(key, read);
  }
  return read;
}

/** The fingerprint each identity had when it was read, so a re-check costs a few reads while nothing changed. */
const fingerprints = new WeakMap<PeerProcess, string>();

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
  fingerprints.set(identity, print);
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
  const known = fingerprints.get(p);
  if (known !== undefined && (await batchedFingerprint(p, procRoot)) === known) return p;
  const now = await identifyLinuxProcess(p.pid, procRoot);
  if (now === null || now.startTime !== p.startTime) return null;
  const fresh: PeerProcess = { ...now, sharedWith: p.sharedWith ?? [] };
  const print = fingerprints.get(now);
  if (print !== undefined) fingerprints.set(fresh, print);
  return fresh;
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

/** Counts of the work a resolver did, for tests and the capacity bench. */
export interface ResolverStats {
  /** Scans of the process table (one per batch of lookups). */
  scans: number;
  /** Processes read in full (`identifyLinuxProcess`): at most one per process per scan. */
  identified: number;
}

/**
 * The Linux resolver: a lookup finds the socket's inode in /proc/net/tcp{,6}, then every process
 * holding it (every /proc/<pid>/fd of this user: a socket may be inherited or passed on, so the
 * first holder found proves nothing). One holder: its identity (`identifyLinuxProcess`). Several:
 * the lowest pid's, with the others in `sharedWith`, so nothing binds to it but "any program".
 * Lookups that arrive together share one scan, and each process is read once per scan however many
 * of its connections are in it: a flood of connections from one process costs other processes one
 * scan's wait, not one read per flooding connection.
 */
export function createProcPeerResolver(procRoot = "/proc"): PeerResolver & { stats: ResolverStats } {
  let queue: Pending[] = [];
  let scanning = false;
  const stats: ResolverStats = { scans: 0, identified: 0 };

  /** Every holder of each wanted inode (pids, ascending). Processes whose fds cannot be read (another user's) are skipped. */
  async function findHolders(wanted: ReadonlySet<string>): Promise<Map<string, number[]>> {
    const found = new Map<string, number[]>();
    const searchPid = async (pid: number): Promise<void> => {
      let fds: string[];
      try {
        fds = await fs.readdir(path.join(procRoot, String(pid), "fd"));
      } catch {
        return;
      }
      const targets = await Promise.all(fds.map((fd) => readlinkOrNull(path.join(procRoot, String(pid), "fd", fd))));
      const seen = new Set<string>();
      for (const target of targets) {
        const m = target === null ? null : /^socket:\[(\d+)\]$/.exec(target);
        const inode = m?.[1];
        if (inode === undefined || !wanted.has(inode) || seen.has(inode)) continue;
        seen.add(inode);
        found.set(inode, [...(found.get(inode) ?? []), pid]);
      }
    };
    const all = (await fs.readdir(procRoot)).filter((n) => /^\d+$/.test(n)).map(Number);
    // A few pids at a time: enough to hide latency, few enough not to exhaust file handles.
    for (let i = 0; i < all.length; i += 16) await Promise.all(all.slice(i, i + 16).map(searchPid));
    for (const pids of found.values()) pids.sort((a, b) => a - b);
    return found;
  }

  async function scan(batch: Pending[]): Promise<void> {
    stats.scans += 1;
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
    const holders = await findHolders(new Set(wanted.keys()));
    const identities = new Map<number, Promise<PeerProcess | null>>();
    const identify = (pid: number): Promise<PeerProcess | null> => {
      let hit = identities.get(pid);
      if (hit === undefined) {
        stats.identified += 1;
        hit = identifyLinuxProcess(pid, procRoot).catch(() => null);
        identities.set(pid, hit);
      }
      return hit;
    };
    await Promise.all(
      [...wanted].map(async ([inode, waiters]) => {
        const pids = holders.get(inode) ?? [];
        const first = pids[0];
        let info = first === undefined ? null : await identify(first);
        if (info !== null && pids.length > 1) {
          const others = await Promise.all(pids.slice(1).map((pid) => describeRef(pid, procRoot)));
          info = { ...info, sharedWith: others.map((o) => o.ref) };
        }
        for (const w of waiters) w.resolve(info);
      }),
    );
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
    stats,
    lookup(ends) {
      return new Promise((resolve) => {
        queue.push({ ends, resolve });
        // Let every connection accepted in this turn of the event loop join the same scan.
        setImmediate(() => void drain());
      });
    },
    recheck: (p) => recheckLinuxProcess(p, procRoot),
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

/**
 * The identity of a local process (the agent on the other end of a connection), as the OS reports it
 * (issue 13 item 1, DESIGN.md section 3): who runs it, which program it is, where, in which terminal
 * session and under which parents. The agent's own claims (name, client ID) live elsewhere; nothing
 * here comes from the agent. Fields added after the first version are optional as well as nullable,
 * so an identity recorded by an older Link (stored by the authority as JSON) still parses.
 */
import { z } from "zod";

/** Another process named by the identity (a parent or the session leader). */
export const ProcessRefSchema = z.object({
  pid: z.number().int(),
  /** Clock ticks after boot (Linux /proc/<pid>/stat field 22); with pid it names one process. */
  startTime: z.number().nullable(),
  /** Absolute path of the executable; null when unreadable (another user's process) or gone. */
  executable: z.string().nullable(),
});
export type ProcessRef = z.infer<typeof ProcessRefSchema>;

export const PeerProcessSchema = z.object({
  pid: z.number().int(),
  executable: z.string().nullable(),
  cwd: z.string().nullable(),
  commandLine: z.array(z.string()).nullable(),
  /** Process start time in clock ticks since boot (Linux) — with pid it names one process. */
  startTime: z.number().nullable(),
  /** Effective uid of the process (Linux /proc/<pid>/status `Uid:` second column). */
  uid: z.number().int().nullable().optional(),
  /**
   * For interpreters (node, python, deno, bun, ruby, perl, shells…): the script they run, as an
   * absolute path resolved against the process's cwd; `-m <module>` for `python -m`; `[inline]` for
   * code given on the command line (`-e`, `-c`); null for other programs or an interactive interpreter.
   */
  script: z.string().nullable().optional(),
  /** Terminal session id (Linux /proc/<pid>/stat field 6); equals the session leader's pid. */
  sessionId: z.number().int().nullable().optional(),
  /** The session leader (usually the login shell of the terminal); null when unknown or gone. */
  sessionLeader: ProcessRefSchema.nullable().optional(),
  /** Parent, grandparent…, nearest first; at most 8, ending at pid 1. */
  parents: z.array(ProcessRefSchema).nullable().optional(),
  /**
   * SHA-256 (hex) over the executable's bytes and the script's (when the script is a file), as the
   * Link read them when the process connected: a program whose content changed is another program.
   * Absent from older Links; null when a file could not be read.
   */
  contentHash: z.string().nullable().optional(),
  /**
   * What else the interpreter was told to load, read from its command line and its environment with
   * its own option grammar (`NODE_OPTIONS=--require=/x.cjs`, `-r ./setup.cjs`, `PYTHONPATH=/lib`,
   * `LD_PRELOAD=…`), in the order found. Part of the program: the same script with other code loaded
   * into it is another program, and the prompt shows these. Empty or absent: nothing extra.
   */
  loads: z.array(z.string()).nullable().optional(),
  /**
   * Other processes holding the same connection (a socket inherited by a child, or passed on): the
   * Link cannot tell which of them speaks, so nothing binds to this identity but "any program".
   */
  sharedWith: z.array(ProcessRefSchema).nullable().optional(),
  /**
   * Why this program cannot be recognised again, for the prompt (e.g. a script given by a relative
   * path from a folder the Link cannot confirm): it gets only once or "while this process runs"
   * grants. Null or absent: recognisable.
   */
  unverifiable: z.string().nullable().optional(),
  /**
   * Set by the authority on a request: the same program (executable, script and folder) was approved
   * for this agent and variable before, but its content or what it loads has changed since; the
   * card says so. Absent: no such earlier approval.
   */
  changedSinceApproval: z.boolean().optional(),
});
export type PeerProcess = z.infer<typeof PeerProcessSchema>;

/** What `entryPoint` reports for code given on the command line (`sh -c`, `python -c`, `node -e`). */
export const INLINE_SCRIPT = "[inline]";

/**
 * The code of an inline program (`sh -c 'echo $X'` gives `-c echo $X`): its command line after the
 * executable, joined with spaces, for display; null for a program with a script file or none. Takes
 * a process, or a grant's program, which carries `commandLine` only for inline code.
 */
export function inlineCode(p: {
  script?: string | null | undefined;
  commandLine?: readonly string[] | null | undefined;
}): string | null {
  return p.script === INLINE_SCRIPT && p.commandLine ? p.commandLine.slice(1).join(" ") : null;
}

/**
 * The key of "this program" for grants bound to a program (issue 13 item 5): executable + script +
 * cwd, as one stable string (JSON of the parts, so no separator can be forged by a path). For code
 * given on the command line (script `[inline]`) the code is the program, so the whole command line
 * is part of the key: `sh -c 'echo $KEY'` approved in a folder is not `sh -c 'curl … $KEY'` there.
 * Null when the executable is unknown, or inline code whose command line is unknown: such a process
 * cannot be recognised again, so nothing may bind to it.
 */
export function programKey(identity: PeerProcess): string | null {
  if (isShared(identity) || (identity.unverifiable ?? null) !== null) return null;
  return programFingerprint(identity);
}

/** True when other processes hold the identity's connection too (see `sharedWith`). */
export function isShared(identity: Pick<PeerProcess, "sharedWith">): boolean {
  return (identity.sharedWith ?? []).length > 0;
}

/**
 * What the program is, whether or not it can be recognised by path: `programKey`'s parts (the path
 * key below) plus, when the Link read them, the code it loads and the content hash. Grants bound to
 * one process compare it too, so a process that exec'd another program (same pid and start time) is
 * not the one approved. Null when the executable (or inline code) is unknown.
 */
export function programFingerprint(identity: PeerProcess): string | null {
  const parts = programParts(identity);
  if (parts === null) return null;
  const loads = identity.loads ?? [];
  const hash = identity.contentHash;
  // Identities from older Links carry neither, and keep their old key.
  if (loads.length === 0 && hash === undefined) return JSON.stringify(parts);
  return JSON.stringify([...parts, { loads, contentHash: hash ?? null }]);
}

/**
 * The program by its paths only (executable + script + cwd, or the inline code): two identities with
 * the same path key and different fingerprints are the same program, changed (new content, or other
 * code loaded into it). Null when the executable (or inline code) is unknown.
 */
export function programPathKey(identity: PeerProcess): string | null {
  const parts = programParts(identity);
  return parts === null ? null : JSON.stringify(parts);
}

function programParts(identity: PeerProcess): unknown[] | null {
  if (identity.executable === null) return null;
  if (identity.script === INLINE_SCRIPT) {
    if (identity.commandLine === null || identity.commandLine.length === 0) return null;
    return ["program", identity.executable, INLINE_SCRIPT, identity.cwd, identity.commandLine.slice(1)];
  }
  return ["program", identity.executable, identity.script ?? null, identity.cwd];
}

/**
 * The key of "this terminal session" for grants bound to a session: session id + the leader's pid
 * and start time (the start time tells a reused pid apart). Null when the session or its leader's
 * start time is unknown, or for session 0 (kernel threads; no terminal).
 */
export function sessionKey(identity: PeerProcess): string | null {
  if (isShared(identity)) return null;
  const sid = identity.sessionId ?? null;
  const leader = identity.sessionLeader ?? null;
  if (sid === null || sid <= 0 || leader === null || leader.startTime === null || leader.pid !== sid) return null;
  return `session:${sid}:${leader.pid}:${leader.startTime}`;
}

/**
 * The key under which the Link may remember an answer given to this identity: the process (pid +
 * start time), its program fingerprint, its terminal session and whether its connection is shared.
 * Any change (an exec, new content, the session's end) misses the memory and asks the authority.
 */
export function identityMemoryKey(identity: PeerProcess | null): string {
  if (identity === null) return "-";
  return JSON.stringify([
    identity.pid,
    identity.startTime,
    programFingerprint(identity),
    sessionKey(identity),
    isShared(identity),
    identity.unverifiable ?? null,
  ]);
}

/**
 * Describes a process from /proc (Linux): uid, pid + start time, executable, cwd, command line,
 * the script an interpreter runs, terminal session and its leader, and the parent chain. What a
 * grant may bind to, plus the code it loads and its content hash, is `identifyLinuxProcess`
 * (identify-linux.ts), built on this.
 */
import path from "node:path";
import type { PeerProcess, ProcessRef } from "../../../shared/process.js";
import { readCommand } from "./command-line.js";
import { hasExited, parseStat, parseStatusUid, readlinkOrNull, readOrNull, type StatFields } from "./proc-linux.js";

/** A process as a parent or session leader is named: pid, start time, executable; and its stat fields. */
export async function describeRef(
  pid: number,
  procRoot: string,
): Promise<{ ref: ProcessRef; stat: StatFields | null }> {
  const dir = path.join(procRoot, String(pid));
  const [exe, statText] = await Promise.all([
    readlinkOrNull(path.join(dir, "exe")),
    readOrNull(path.join(dir, "stat")),
  ]);
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
    // A leader killed but not yet reaped (a zombie) has ended the session too.
    else if (leader !== null && leader.stat !== null && leader.stat.session === sessionId && !hasExited(leader.stat))
      sessionLeader = leader.ref;
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

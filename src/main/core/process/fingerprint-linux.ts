/**
 * The fingerprint of an identity (Linux): a hash over what must not change while a connection keeps
 * its identity, kept beside each identity when it is read, so the re-check before each request
 * (recheck-linux.ts) costs a few reads while nothing changed.
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { PeerProcess } from "../../../shared/process.js";
import { hasExited, parseStat, readOrNull } from "./proc-linux.js";

/**
 * What the re-check compares (`recheckLinuxProcess`): the running executable's file identity (inode
 * and ctime, through /proc/<pid>/exe), the start time, the command line and environment as /proc
 * shows them, the script file's identity, and whether the session leader still runs. Null when
 * any cannot be read.
 */
export async function fingerprint(p: PeerProcess, procRoot: string): Promise<string | null> {
  const dir = path.join(procRoot, String(p.pid));
  const file = p.script !== null && p.script !== undefined && path.isAbsolute(p.script) ? p.script : null;
  const leader = p.sessionLeader ?? null;
  const [exe, stat, cmdline, environ, script, leaderStat] = await Promise.all([
    fs.stat(path.join(dir, "exe")).catch(() => null),
    readOrNull(path.join(dir, "stat")),
    readOrNull(path.join(dir, "cmdline")),
    readOrNull(path.join(dir, "environ")),
    file === null ? Promise.resolve(null) : fs.stat(file).catch(() => null),
    leader === null || leader.pid === p.pid
      ? Promise.resolve(null)
      : readOrNull(path.join(procRoot, String(leader.pid), "stat")),
  ]);
  if (exe === null || stat === null || cmdline === null || environ === null) return null;
  const leaderNow = leaderStat === null ? null : parseStat(leaderStat);
  // A zombie leader (killed, not yet reaped) has ended its session: no more deliveries to it.
  const leaderAlive =
    leader === null ||
    leader.pid === p.pid ||
    (leaderNow !== null && leaderNow.startTime === leader.startTime && !hasExited(leaderNow));
  return createHash("sha256")
    .update(
      JSON.stringify([
        exe.dev,
        exe.ino,
        exe.ctimeMs,
        parseStat(stat)?.startTime ?? null,
        cmdline,
        environ,
        script === null ? null : [script.dev, script.ino, script.size, script.mtimeMs, script.ctimeMs],
        leaderAlive,
      ]),
    )
    .digest("hex");
}

/** The fingerprint each identity had when it was read, so a re-check costs a few reads while nothing changed. */
const fingerprints = new WeakMap<PeerProcess, string>();

/** Remembers the fingerprint `print` of `p` (as it was when `p` was read). */
export function rememberFingerprint(p: PeerProcess, print: string): void {
  fingerprints.set(p, print);
}

/** The fingerprint `p` had when it was read, or undefined for an identity this room did not read. */
export function knownFingerprint(p: PeerProcess): string | undefined {
  return fingerprints.get(p);
}

/** Re-checks of one process waiting for the next turn of the event loop, by process and what the fingerprint reads. */
const waiting = new Map<string, Promise<string | null>>();

/**
 * `fingerprint`, read once per turn of the event loop for all the re-checks of one process that
 * arrived before the read starts (a process with 200 connections asking at once costs one read,
 * not 200). Sound because a re-check joins only a read that has not started yet: every answer
 * comes from a read made after its request arrived, so an exec before a request is always seen.
 */
export function batchedFingerprint(p: PeerProcess, procRoot: string): Promise<string | null> {
  const key = JSON.stringify([
    procRoot,
    p.pid,
    p.startTime,
    p.script ?? null,
    p.sessionLeader?.pid ?? null,
    p.sessionLeader?.startTime ?? null,
  ]);
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

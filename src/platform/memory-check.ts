/**
 * Checks, after the fact, that a process's memory is still closed to the user's other programs
 * (Linux). Hardening at start (harden.ts) is not enough on its own: where any program of the user
 * may ptrace any other (no Yama, or `kernel.yama.ptrace_scope` 0), a program can seize a key holder
 * right after exec, before it hardens itself, rewrite its `prctl(PR_SET_DUMPABLE, 0)` to 1, fake
 * the `PR_GET_DUMPABLE` answer, detach, and read its memory at leisure. So:
 *
 * - `verifyMemoryClosed()`: a process checks itself right before it takes a secret (a passphrase, a
 *   PIN): nobody traces it (`TracerPid` 0 in /proc/self/status) and a fresh PR_GET_DUMPABLE gives 0
 *   (a tracer that detached can no longer fake it; one still attached shows as the tracer).
 * - `writeWhenMemoryClosed()`: a parent checks its child from outside before handing it keys on
 *   stdin: the child's /proc/<pid>/environ must be refused (EACCES, which the kernel answers only
 *   for a non-dumpable process of the same user) and nobody may trace it.
 *
 * What remains: a program that seized the process before it hardened may have changed its code
 * before detaching; no check made from inside that process or from its /proc entries can see that.
 * The residual risk `ptrace_scope_0` tells the person to close it with Yama.
 *
 * Root is not an adversary here (it reads any memory), and a process running as root would see
 * every /proc file open: every check is skipped for root, and off Linux (no such flag; other
 * systems keep other processes out of memory without a debugging entitlement or privilege).
 */
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import { readDumpable } from "./dumpable-linux.js";

/** Where the checks apply; defaults are this process's. */
export interface CheckScope {
  /** Default `process.platform`. */
  platform?: NodeJS.Platform;
  /** The checking process's uid; default `process.getuid()`. 0 skips the checks. */
  uid?: number | null;
}

function skipped(scope: CheckScope): boolean {
  if ((scope.platform ?? process.platform) !== "linux") return true;
  return (scope.uid === undefined ? (process.getuid?.() ?? null) : scope.uid) === 0;
}

/** The `TracerPid:` of a /proc/<pid>/status text, or null when the line is missing. */
export function tracerPidOf(status: string): number | null {
  const match = /^TracerPid:\s*(\d+)\s*$/m.exec(status);
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** The name of process `pid` (/proc/<pid>/comm), for a sentence; "unknown" when it cannot be read. */
function processName(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "unknown";
  }
}

/** Why `status` (of a /proc/<pid>/status) shows a tracer, or null when it shows none. */
function tracedReason(status: string): string | null {
  const tracer = tracerPidOf(status);
  if (tracer === null) return "its /proc status has no TracerPid line";
  return tracer === 0 ? null : `process ${tracer} (${processName(tracer)}) is tracing it`;
}

/**
 * Checks that this process's memory is closed now: nobody traces it and a fresh PR_GET_DUMPABLE
 * gives 0. Resolves to null when it is closed (or the check does not apply: root, not Linux), else
 * to the reason in a few words ("process 4242 (gdb) is tracing it", "it is dumpable
 * (PR_GET_DUMPABLE gives 1)"), fit for the residual risk `not_dumpable_failed`.
 *
 * `dumpable: false` checks only the tracer: for a process whose hardening at start already failed
 * (the flag could never be set, which is reported as that residual risk), a dumpable flag is no news.
 * Never rejects.
 */
export async function verifyMemoryClosed(options: CheckScope & { dumpable?: boolean } = {}): Promise<string | null> {
  if (skipped(options)) return null;
  let status: string;
  try {
    status = fs.readFileSync("/proc/self/status", "utf8");
  } catch (err) {
    return `/proc/self/status could not be read (${err instanceof Error ? err.message : String(err)})`;
  }
  const traced = tracedReason(status);
  if (traced !== null) return traced;
  if (options.dumpable === false) return null;
  const flag = await readDumpable();
  if (typeof flag === "string") return flag;
  return flag === 0 ? null : `it is dumpable (PR_GET_DUMPABLE gives ${flag})`;
}

/**
 * One look at process `pid` from outside: null when its memory is closed to this process (its
 * /proc/<pid>/environ is refused with EACCES and its status shows no tracer), else why not.
 */
export function childMemoryOpen(pid: number): string | null {
  try {
    fs.readFileSync(`/proc/${pid}/environ`);
    return "its memory is open to other programs of this user (/proc/<pid>/environ can be read)";
  } catch (err) {
    const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : null;
    if (code !== "EACCES")
      return `/proc/${pid}/environ could not be read (${code ?? (err instanceof Error ? err.message : String(err))})`;
  }
  try {
    return tracedReason(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch (err) {
    return `/proc/${pid}/status could not be read (${err instanceof Error ? err.message : String(err)})`;
  }
}

export interface HandOverOptions extends CheckScope {
  /** How long the child has to close its memory, in ms; default 5000. */
  timeoutMs?: number;
  /** Between two looks, in ms; default 25. */
  intervalMs?: number;
}

/**
 * Writes `line` to `child`'s stdin and ends it, once the child's memory is closed (`childMemoryOpen`
 * gives null): a child that hardens itself first thing does so within milliseconds of exec. When it
 * is still open after `timeoutMs`, or the child exits first, nothing is written, the child is killed
 * (SIGKILL) and the promise resolves to the last reason (a few words). Resolves to null once written.
 * As root or off Linux the line is written at once. Never rejects.
 */
export async function writeWhenMemoryClosed(
  child: ChildProcess,
  line: string,
  options: HandOverOptions = {},
): Promise<string | null> {
  const write = (): null => {
    // A child that died at once closes its stdin: the write then fails, and its exit says why.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(line);
    return null;
  };
  if (skipped(options)) return write();
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  let reason = "it has no process id (it did not start)";
  for (;;) {
    if (gone()) return "it exited before its memory was closed";
    if (child.pid !== undefined) {
      const open = childMemoryOpen(child.pid);
      if (open === null) return gone() ? "it exited before its memory was closed" : write();
      reason = open;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
  child.kill("SIGKILL");
  return reason;
}

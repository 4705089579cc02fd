/**
 * Linux: makes this process not dumpable (prctl(2) `PR_SET_DUMPABLE` 0), so that the user's other
 * processes can neither ptrace it nor read /proc/<pid>/mem, environ, maps or fd (the kernel's
 * ptrace access check refuses a non-dumpable target to anyone without CAP_SYS_PTRACE, whatever
 * `kernel.yama.ptrace_scope` says), and it leaves no core dump. The flag survives until the process
 * execs; children start dumpable again and set it themselves. The call goes through koffi (a
 * maintained FFI package) into the C library rather than a hand-built addon.
 */

import type { LibraryHandle, load as LoadLibrary } from "koffi";

/** prctl(2) options, from <linux/prctl.h>. */
const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;

/** What the attempt gave: `ok` once PR_GET_DUMPABLE reads 0, else why not (a sentence for the log and status). */
export type DumpableOutcome = { ok: true } | { ok: false; reason: string };

/** prctl(2) with one argument, through koffi; resolves to its return value (-1 on failure). */
type Prctl = (option: number, arg2: number) => number;

let prctlFn: Promise<{ prctl: Prctl; errno: () => number }> | null = null;

/** Loads the C library's prctl once per process. Rejects when koffi or the C library cannot be loaded. */
function loadPrctl(): Promise<{ prctl: Prctl; errno: () => number }> {
  prctlFn ??= import("koffi").then((koffi) => {
    const libc = loadLibc(koffi.load);
    // prctl is variadic in <sys/prctl.h>: each extra argument is given with its C type.
    const fn = libc.func("int prctl(int option, ...)");
    const prctl: Prctl = (option, arg2) => {
      const result: unknown = fn(
        option,
        "unsigned long",
        arg2,
        "unsigned long",
        0,
        "unsigned long",
        0,
        "unsigned long",
        0,
      );
      return typeof result === "number" ? result : -1;
    };
    return { prctl, errno: () => koffi.errno() };
  });
  prctlFn.catch(() => {
    prctlFn = null;
  });
  return prctlFn;
}

/**
 * Sets the process non-dumpable and reads the flag back. Never throws: a C library that cannot be
 * loaded (a musl system without `libc.so.6` falls back to `libc.so`), a failing prctl (errno given)
 * or a flag that reads back non-zero become `{ ok: false, reason }`.
 */
export async function makeNotDumpable(): Promise<DumpableOutcome> {
  return setDumpable(0);
}

/**
 * Sets the dumpable flag to `value` (0: closed; 1: open again, which only tests have a reason to do)
 * and reads it back. Never throws; see `makeNotDumpable`.
 */
export async function setDumpable(value: 0 | 1): Promise<DumpableOutcome> {
  try {
    const { prctl, errno } = await loadPrctl();
    if (prctl(PR_SET_DUMPABLE, value) !== 0)
      return { ok: false, reason: `prctl(PR_SET_DUMPABLE, ${value}) failed (errno ${errno()})` };
    const now = prctl(PR_GET_DUMPABLE, 0);
    if (now !== value)
      return {
        ok: false,
        reason:
          value === 0
            ? `the process is still dumpable after prctl (PR_GET_DUMPABLE gave ${now})`
            : `PR_GET_DUMPABLE gave ${now} after setting ${value}`,
      };
    return { ok: true };
  } catch (err) {
    return {
      ok: false,
      reason: `prctl could not be called through koffi: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/**
 * The dumpable flag as prctl(PR_GET_DUMPABLE) gives it now (0: not dumpable; 1 or 2: dumpable), or
 * a sentence saying why it could not be read. A fresh call each time: a debugger that rewrote an
 * earlier answer and then detached cannot rewrite this one.
 */
export async function readDumpable(): Promise<number | string> {
  try {
    const { prctl, errno } = await loadPrctl();
    const now = prctl(PR_GET_DUMPABLE, 0);
    return now >= 0 ? now : `prctl(PR_GET_DUMPABLE) failed (errno ${errno()})`;
  } catch (err) {
    return `prctl could not be called through koffi: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function loadLibc(load: typeof LoadLibrary): LibraryHandle {
  try {
    return load("libc.so.6");
  } catch {
    return load("libc.so");
  }
}

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

/**
 * Sets the process non-dumpable and reads the flag back. Never throws: a C library that cannot be
 * loaded (a musl system without `libc.so.6` falls back to `libc.so`), a failing prctl (errno given)
 * or a flag that reads back non-zero become `{ ok: false, reason }`.
 */
export async function makeNotDumpable(): Promise<DumpableOutcome> {
  try {
    const koffi = await import("koffi");
    const libc = loadLibc(koffi.load);
    // prctl is variadic in <sys/prctl.h>: each extra argument is given with its C type.
    const prctl = libc.func("int prctl(int option, ...)");
    const call = (option: number, arg2: number): number => {
      const result: unknown = prctl(option, "unsigned long", arg2, "unsigned long", 0, "unsigned long", 0, "unsigned long", 0);
      return typeof result === "number" ? result : -1;
    };
    if (call(PR_SET_DUMPABLE, 0) !== 0) return { ok: false, reason: `prctl(PR_SET_DUMPABLE, 0) failed (errno ${koffi.errno()})` };
    const now = call(PR_GET_DUMPABLE, 0);
    if (now !== 0) return { ok: false, reason: `the process is still dumpable after prctl (PR_GET_DUMPABLE gave ${now})` };
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `prctl could not be called through koffi: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function loadLibc(load: typeof LoadLibrary): LibraryHandle {
  try {
    return load("libc.so.6");
  } catch {
    return load("libc.so");
  }
}

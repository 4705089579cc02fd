/**
 * Keeps a process that holds keys or a proof of presence from handing its memory to the user's
 * other programs (DESIGN.md section 9): an agent running as the same user must not read it through
 * ptrace, /proc/<pid>/mem, a core dump, or Node's inspector.
 *
 * - Node's inspector: refused at start when `--inspect…`/`--debug…` is in `process.execArgv` or
 *   `NODE_OPTIONS`, or the inspector is already open (so are heap snapshots, and code loaded
 *   through `NODE_OPTIONS`: see `debuggerRefusal`); and `kill -USR1 <pid>`, which makes any Node
 *   process open it on 127.0.0.1:9229 (a second process then reads keys through
 *   `Runtime.evaluate`), is caught: Node's docs reserve SIGUSR1 for the debugger, and a JavaScript
 *   listener for it takes the signal instead (libuv installs its own handler for the signal in
 *   place of Node's), so the inspector is not started; test/hardening.test.ts checks this on the
 *   Node that runs the tests. Node 20 has no option to turn the signal off (`--disable-sigusr1`
 *   arrived in Node 22.14/23.7), so a listener is the way; it is installed first, before anything
 *   that could await, and never removed.
 * - Not dumpable (Linux, dumpable-linux.ts): the kernel refuses same-user ptrace and /proc reads.
 *   A failure is reported, not fatal: the Link still runs and shows the residual risk
 *   `not_dumpable_failed`. A program may have seized the process before this ran and undone it,
 *   so a key holder checks again before it takes a secret (memory-check.ts).
 *
 * Root is not an adversary here: it ignores dumpability and can read any memory.
 */
import inspector from "node:inspector";
import { LinkError } from "../shared/errors.js";
import { makeNotDumpable } from "./dumpable-linux.js";
import { codeLoadingOption, heapWritingOption, inspectorOption, parseNodeOptions } from "./node-options.js";

/** Which process hardens itself; only the wording of the refusal depends on it. */
export type ProcessRole = "link" | "authority" | "shell" | "cli";

const ROLE_NAMES: Record<ProcessRole, string> = {
  link: "Piper Link",
  authority: "Piper Link's authority",
  shell: "The Piper Link app",
  cli: "piper-link",
};

/** What hardening achieved, for the log and for `status`'s residual risks. */
export interface HardeningResult {
  /**
   * true: the process is not dumpable (read back with PR_GET_DUMPABLE); false: it could not be made
   * so (`dumpableFailure` says why; the residual risk `not_dumpable_failed`); null: the platform has
   * no such flag (macOS, Windows: there the OS already keeps other processes from reading memory
   * without a debugging entitlement or privilege).
   */
  notDumpable: boolean | null;
  /** Why the process is still dumpable, or null. */
  dumpableFailure: string | null;
}

export interface HardenOptions {
  /** Node's own options of this process; default `process.execArgv`. */
  execArgv?: readonly string[];
  /** The environment whose `NODE_OPTIONS` Node read at start (the caller's `process.env`, read at its composition root). */
  env: Readonly<NodeJS.ProcessEnv>;
  /** Default `process.platform`. */
  platform?: NodeJS.Platform;
  /**
   * Whether a debugger may be enabled. Only the unpackaged desktop app (a developer's build)
   * allows it; everything else refuses to start with one. Default false.
   */
  allowDebugger?: boolean;
}

/** The listener that keeps SIGUSR1 from opening the inspector; one per process, never removed. */
const ignoreSigusr1 = (): void => undefined;

/**
 * Installs the SIGUSR1 listener (idempotent). While it is installed, `kill -USR1` does nothing to
 * this process instead of opening the inspector. Signal listeners do not keep the event loop alive.
 */
export function guardSigusr1(): void {
  if (!process.listeners("SIGUSR1").includes(ignoreSigusr1)) process.on("SIGUSR1", ignoreSigusr1);
}

/**
 * The sentence refusing a start that would open this process to the user's other programs, or null:
 * - Node's inspector: an inspector option in `execArgv` or in `NODE_OPTIONS` (read with Node's own
 *   grammar, quotes included), or an inspector already open (`inspector.url()`), which catches
 *   forms the option check does not know.
 * - Heap snapshots (`--heapsnapshot-signal`, `--heapsnapshot-near-heap-limit`), in either place:
 *   the snapshot file holds every key.
 * - Code loaded from `NODE_OPTIONS` (`--require`/`-r`, `--import`, `--loader`,
 *   `--experimental-loader`): an agent can set NODE_OPTIONS for the person's next start (a shell's
 *   rc file, `systemctl --user set-environment`). Not refused in `execArgv`: that is the command
 *   line of whoever started the process on purpose (the tests run Links under `node --import tsx`,
 *   and the embedded authority is started with its parent's options).
 *
 * This stops a naive injection only. Code named by `--require` has already run when this check
 * runs (Node loads it before the main script), so it may have hidden itself or done its work; the
 * same goes for LD_PRELOAD and any other way to change the environment or the install the Link
 * starts from. That is the residual risk "an install or environment you can write" in the README.
 */
export function debuggerRefusal(
  role: ProcessRole,
  execArgv: readonly string[],
  env: Readonly<NodeJS.ProcessEnv>,
): string | null {
  const who = ROLE_NAMES[role];
  const why = "any program running as you could then attach to it and read the keys it holds";
  const nodeOptions = parseNodeOptions(env["NODE_OPTIONS"] ?? "");
  const fromArgv = inspectorOption(execArgv);
  if (fromArgv !== null)
    return `${who} does not run with Node's debugger enabled (${fromArgv} on Node's command line): ${why}. Start it without ${fromArgv}.`;
  const fromEnv = inspectorOption(nodeOptions);
  if (fromEnv !== null)
    return `${who} does not run with Node's debugger enabled (${fromEnv} in NODE_OPTIONS): ${why}. Remove ${fromEnv} from NODE_OPTIONS and start it again.`;
  if (inspector.url() !== undefined)
    return `${who} does not run with Node's debugger enabled (the inspector is open): ${why}. Start it without a debugger.`;
  const heapWhy =
    "a heap snapshot writes everything it holds, its keys too, to a file any program running as you can read";
  const heapArgv = heapWritingOption(execArgv);
  if (heapArgv !== null)
    return `${who} does not run with Node's heap snapshots enabled (${heapArgv} on Node's command line): ${heapWhy}. Start it without ${heapArgv}.`;
  const heapEnv = heapWritingOption(nodeOptions);
  if (heapEnv !== null)
    return `${who} does not run with Node's heap snapshots enabled (${heapEnv} in NODE_OPTIONS): ${heapWhy}. Remove ${heapEnv} from NODE_OPTIONS and start it again.`;
  const code = codeLoadingOption(nodeOptions);
  if (code !== null) {
    return `${who} does not run with code loaded through NODE_OPTIONS (${code} in NODE_OPTIONS): that code would run inside it and could read the keys it holds. Remove ${code} from NODE_OPTIONS and start it again; if you did not put it there, a program running as you did (look in your shell's startup files and \`systemctl --user show-environment\`).`;
  }
  return null;
}

/**
 * Hardens this process; call it first thing in a process that will hold keys or a proof. In order:
 * the SIGUSR1 listener (synchronously, before the returned promise exists), the debugger refusal,
 * then not-dumpable on Linux.
 *
 * Rejects with a `bad_request` LinkError (the CLI exits 2) whose sentence says which option to
 * remove, when a debugger is enabled and `allowDebugger` is not set. Never rejects for the
 * dumpable flag: the result says whether it was set.
 */
export async function hardenProcess(role: ProcessRole, options: HardenOptions): Promise<HardeningResult> {
  guardSigusr1();
  if (options.allowDebugger !== true) {
    const refusal = debuggerRefusal(role, options.execArgv ?? process.execArgv, options.env);
    if (refusal !== null) throw new LinkError("bad_request", refusal);
  }
  if ((options.platform ?? process.platform) !== "linux") return { notDumpable: null, dumpableFailure: null };
  const outcome = await makeNotDumpable();
  return outcome.ok
    ? { notDumpable: true, dumpableFailure: null }
    : { notDumpable: false, dumpableFailure: outcome.reason };
}

/**
 * For a CLI command about to read or hold a proof of presence (a PIN, the passphrase): the same
 * hardening as the Link's, for the time the command runs. Call it before prompting. Rejects like
 * `hardenProcess` (exit 2 with the sentence) when a debugger is enabled.
 */
export function hardenForProof(options: Omit<HardenOptions, "allowDebugger">): Promise<HardeningResult> {
  return hardenProcess("cli", options);
}

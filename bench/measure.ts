/**
 * Measuring on a busy machine. The bench runs on shared 2-core machines where other processes take
 * the CPU at random moments; a wall-clock figure then says more about them than about the Link.
 * Three tools keep a figure about the Link:
 *
 *   interleaving: the cases of one comparison take turns sample by sample (A, B, C, then B, C, A,
 *     ...), so a busy second hits every case alike, and the median of each case is compared;
 *   CPU time: what a process itself spent (user + system, all its threads), which other processes
 *     do not inflate, for figures that mean "how much work";
 *   run-queue wait: the time a thread was ready to run but waited for a CPU (the kernel's
 *     /proc/PID/task/TID/schedstat, in ns), subtracted from a wall time to estimate the wait a person
 *     would see on a machine free for the Link.
 *
 * Each figure printed names which of these it is.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The value at percentile `p` (0-100) of `samples` (nearest rank); NaN for none. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export const p50 = (samples: readonly number[]): number => percentile(samples, 50);

/**
 * Runs each of `cases` `n` times, taking turns sample by sample with the order rotated every
 * iteration (so no case always runs right after another); each case returns its own measurement.
 * Returns the samples per case, in the order of `cases`.
 */
export async function interleaved<K extends string>(
  cases: Record<K, () => Promise<number>>,
  n: number,
): Promise<Record<K, number[]>> {
  const names = Object.keys(cases) as K[];
  const out = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length] as K;
      out[name].push(await cases[name]());
    }
  }
  return out;
}

/** CPU and run-queue wait of a live process, summed over its threads, from /proc (Linux), in ms. */
export interface Scheduling {
  /** Time on a CPU, all live threads (user + system). */
  cpuMs: number;
  /** Time ready to run but waiting for a CPU, main thread only. */
  mainWaitMs: number;
  /** The same, summed over all live threads. */
  allWaitMs: number;
}

/** Reads `pid`'s scheduling figures; null when /proc has none (not Linux, or the process is gone). */
export function scheduling(pid: number): Scheduling | null {
  try {
    let cpu = 0;
    let wait = 0;
    let mainWait = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      // schedstat: time on CPU (ns), time waiting on a run queue (ns), timeslices.
      const [onCpu = 0, waiting = 0] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8")
        .trim()
        .split(/\s+/)
        .map(Number);
      cpu += onCpu;
      wait += waiting;
      if (tid === String(pid)) mainWait = waiting;
    }
    return { cpuMs: cpu / 1e6, mainWaitMs: mainWait / 1e6, allWaitMs: wait / 1e6 };
  } catch {
    return null;
  }
}

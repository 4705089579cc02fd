/**
 * The Linux peer resolver: from a loopback connection's endpoints to the process(es) holding its
 * socket (/proc/net/tcp{,6} for the inode, then every /proc/<pid>/fd), and their identity
 * (identify-linux.ts). Lookups that arrive together share one scan, so a thousand agents connecting
 * at once cost a few scans, not a thousand.
 */
import fs from "node:fs/promises";
import path from "node:path";
import type { PeerProcess } from "../../../shared/process.js";
import { peerLineKeys, type SocketEnds } from "../../../shared/socket-owner.js";
import { describeRef } from "./describe-linux.js";
import { identifyLinuxProcess, recheckLinuxProcess } from "./identify-linux.js";
import type { PeerResolver } from "./peer-resolver.js";
import { readlinkOrNull } from "./proc-linux.js";
import { parseProcNetTcp, socketTables } from "./socket-table-linux.js";

interface Pending {
  ends: SocketEnds;
  resolve: (p: PeerProcess | null) => void;
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

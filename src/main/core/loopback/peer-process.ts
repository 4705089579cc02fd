/**
 * Finds the local process on the other end of a loopback TCP connection, so approval prompts, the
 * audit log and `status` can name who is asking. On Linux it reads /proc: the socket inode from
 * /proc/net/tcp{,6} by port pair, then the process holding that inode among /proc/<pid>/fd. Lookups
 * that arrive together share one scan, and pids seen recently are searched first, so a thousand
 * agents connecting at once cost a few scans, not a thousand. On macOS it asks `lsof`. Elsewhere,
 * or when the process belongs to another user, the answer is `null` ("unknown process").
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { PeerProcess } from "../../../shared/control.js";

const execFileAsync = promisify(execFile);

export interface PeerResolver {
  /** `peerPort` is the agent's local port (our remote port); `linkPort` is the port it connected to. */
  lookup(peerPort: number, linkPort: number): Promise<PeerProcess | null>;
}

interface Pending {
  peerPort: number;
  linkPort: number;
  resolve: (p: PeerProcess | null) => void;
}

/** Parses /proc/net/tcp or tcp6 into "localPort:remotePort" -> socket inode. */
export function parseProcNetTcp(text: string, into = new Map<string, string>()): Map<string, string> {
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    const remote = cols[2];
    const inode = cols[9];
    if (!local || !remote || !inode || inode === "0") continue;
    const lp = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
    const rp = parseInt(remote.slice(remote.lastIndexOf(":") + 1), 16);
    into.set(`${lp}:${rp}`, inode);
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

/** Field 22 of /proc/<pid>/stat: start time in clock ticks after boot. The comm field may hold spaces. */
export function parseStartTime(stat: string): number | null {
  const afterComm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const value = Number(afterComm[19]);
  return Number.isFinite(value) ? value : null;
}

export async function describeLinuxProcess(pid: number, procRoot = "/proc"): Promise<PeerProcess> {
  const dir = path.join(procRoot, String(pid));
  const [exe, cwd, cmdline, stat] = await Promise.all([
    readlinkOrNull(path.join(dir, "exe")),
    readlinkOrNull(path.join(dir, "cwd")),
    readOrNull(path.join(dir, "cmdline")),
    readOrNull(path.join(dir, "stat")),
  ]);
  return {
    pid,
    executable: exe,
    cwd,
    commandLine: cmdline === null ? null : cmdline.split("\0").filter((s) => s.length > 0),
    startTime: stat === null ? null : parseStartTime(stat),
  };
}

export function createProcPeerResolver(procRoot = "/proc"): PeerResolver {
  let queue: Pending[] = [];
  let scanning = false;
  /** Recently matched pids, most recent last; searched before the full process list. */
  const recent: number[] = [];

  async function findOwners(wanted: Map<string, Pending[]>): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const searchPid = async (pid: number): Promise<void> => {
      let fds: string[];
      try {
        fds = await fs.readdir(path.join(procRoot, String(pid), "fd"));
      } catch {
        return;
      }
      for (const fd of fds) {
        const target = await readlinkOrNull(path.join(procRoot, String(pid), "fd", fd));
        const m = target === null ? null : /^socket:\[(\d+)\]$/.exec(target);
        if (m?.[1] && wanted.has(m[1]) && !found.has(m[1])) found.set(m[1], pid);
      }
    };
    for (const pid of [...recent].reverse()) {
      await searchPid(pid);
      if (found.size === wanted.size) return found;
    }
    const all = (await fs.readdir(procRoot))
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((pid) => !recent.includes(pid))
      .sort((a, b) => b - a);
    // A few pids at a time: enough to hide latency, few enough not to exhaust file handles.
    for (let i = 0; i < all.length && found.size < wanted.size; i += 16) {
      await Promise.all(all.slice(i, i + 16).map(searchPid));
    }
    return found;
  }

  async function scan(batch: Pending[]): Promise<void> {
    const sockets = new Map<string, string>();
    for (const file of ["net/tcp", "net/tcp6"]) {
      const text = await readOrNull(path.join(procRoot, file));
      if (text !== null) parseProcNetTcp(text, sockets);
    }
    const wanted = new Map<string, Pending[]>();
    for (const p of batch) {
      const inode = sockets.get(`${p.peerPort}:${p.linkPort}`);
      if (inode === undefined) p.resolve(null);
      else wanted.set(inode, [...(wanted.get(inode) ?? []), p]);
    }
    if (wanted.size === 0) return;
    const owners = await findOwners(wanted);
    for (const [inode, waiters] of wanted) {
      const pid = owners.get(inode);
      const info = pid === undefined ? null : await describeLinuxProcess(pid, procRoot);
      if (pid !== undefined) {
        const at = recent.indexOf(pid);
        if (at >= 0) recent.splice(at, 1);
        recent.push(pid);
        if (recent.length > 64) recent.shift();
      }
      for (const w of waiters) w.resolve(info);
    }
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
    lookup(peerPort, linkPort) {
      return new Promise((resolve) => {
        queue.push({ peerPort, linkPort, resolve });
        // Let every connection accepted in this turn of the event loop join the same scan.
        setImmediate(() => void drain());
      });
    },
  };
}

/** macOS: `lsof` names both ends of the connection; the peer is the pid that is not us. */
export function createLsofPeerResolver(): PeerResolver {
  return {
    async lookup(peerPort, linkPort) {
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
        return { pid, executable: commandLine[0] ?? null, cwd, commandLine, startTime: null };
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

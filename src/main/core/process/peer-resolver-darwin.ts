/**
 * The macOS peer resolver: `lsof` names both ends of the connection, `ps` the command line. It gives
 * pid, cwd and command line only (uid, script, session and parents are null there), and offers no
 * re-check. Untested here.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { PeerResolver } from "./peer-resolver.js";

const execFileAsync = promisify(execFile);

/** macOS: `lsof` names both ends of the connection; the peer is the pid that is not us. */
export function createLsofPeerResolver(): PeerResolver {
  return {
    async lookup({ peerPort, localPort: linkPort }) {
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
        const { stdout: cwdOut } = await execFileAsync("lsof", ["-a", "-p", String(pid), "-d", "cwd", "-Fn"], {
          timeout: 2000,
        });
        const cwd =
          cwdOut
            .split("\n")
            .find((l) => l.startsWith("n"))
            ?.slice(1) ?? null;
        const { stdout: cmd } = await execFileAsync("ps", ["-o", "command=", "-p", String(pid)], { timeout: 2000 });
        const commandLine = cmd.trim().split(/\s+/);
        return {
          pid,
          executable: commandLine[0] ?? null,
          cwd,
          commandLine,
          startTime: null,
          uid: null,
          script: null,
          sessionId: null,
          sessionLeader: null,
          parents: null,
        };
      } catch {
        return null;
      }
    },
  };
}

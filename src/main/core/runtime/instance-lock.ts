/**
 * Single-instance lock: one Link per profile per machine. The lock file is created exclusively and
 * holds the owner's pid; a lock whose pid is gone is stale and taken over.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { LinkError } from "../../../shared/errors.js";
import { ensurePrivateDir, isPidAlive, readFileOrNull, removeIfOwned } from "./files.js";

export interface InstanceLock {
  release(): Promise<void>;
}

export async function acquireInstanceLock(
  file: string,
  describeOwner: (pid: number) => Promise<string>,
): Promise<InstanceLock> {
  await ensurePrivateDir(path.dirname(file));
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      await fs.writeFile(file, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }), {
        flag: "wx",
        mode: 0o600,
      });
      return { release: () => removeIfOwned(file, process.pid) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const text = await readFileOrNull(file);
    let pid: number | null;
    try {
      const parsed = JSON.parse(text ?? "null") as { pid?: unknown } | null;
      pid = typeof parsed?.pid === "number" ? parsed.pid : null;
    } catch {
      pid = null;
    }
    if (pid !== null && pid !== process.pid && isPidAlive(pid)) {
      throw new LinkError("already_running", await describeOwner(pid));
    }
    // Stale (owner gone) or unreadable: take it over.
    await fs.rm(file, { force: true });
  }
  throw new LinkError("already_running", `Could not take the lock ${file}; another Piper Link may be starting.`);
}

/**
 * Small file helpers for the runtime directory: private directories, atomic private writes, and
 * "is this pid still alive" for stale files.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";

/** Creates `dir` (and parents) and makes the last level private (0700). */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== "win32") await fs.chmod(dir, 0o700);
}

/** Writes `content` to `file` with mode 0600 via a temporary file and rename, so readers never see half a file. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  await ensurePrivateDir(path.dirname(file));
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await fs.writeFile(tmp, content, { mode: 0o600, flag: "wx" });
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function readFileOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/**
 * True when a process with this pid exists (signal 0 probes without touching it). A zombie (dead,
 * not yet reaped — common for detached daemons in containers whose init does not reap) counts as gone.
 */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  if (process.platform !== "linux") return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Removes `file` only if it still holds what this process wrote (another Link may own it now). */
export async function removeIfOwned(file: string, ownerPid: number): Promise<void> {
  const text = await readFileOrNull(file);
  if (text === null) return;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && (parsed as { pid?: unknown }).pid !== ownerPid) return;
  } catch {
    // An unreadable file is ours to clean up.
  }
  await fs.rm(file, { force: true });
}

/**
 * Small file helpers for the runtime directory: private directories, atomic private writes, and
 * "is this pid still alive" for stale files.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { LinkError } from "../../../shared/errors.js";

/** What each file-system refusal means for the person, by Node's error code. */
const STORAGE_CAUSES: Readonly<Record<string, string>> = {
  EROFS: "its file system is read-only",
  EACCES: "permission is denied",
  EPERM: "the operation is not permitted there",
  ENOSPC: "the disk is full",
  EDQUOT: "your disk quota is used up",
  ENOENT: "a folder above it does not exist and cannot be made",
  ENOTDIR: "a part of that path is a file, not a folder",
};

/**
 * The LinkError (`storage_unavailable`) for a file-system error met while writing Piper Link's own
 * files under `where`, naming the cause and the fix; null when `err` is not such an error (it is
 * then rethrown as is). The fix: free space, make the folder writable, or point HOME or the XDG
 * folders (`XDG_STATE_HOME`, `XDG_DATA_HOME`, `XDG_RUNTIME_DIR`) somewhere writable.
 */
export function storageError(err: unknown, where: string): LinkError | null {
  if (err instanceof LinkError) return err;
  const code = err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : null;
  if (code === null) return null;
  return storageErrorFor(code === "ENOENT" ? (firstRefusal(where) ?? code) : code, where, err);
}

/**
 * Node's recursive mkdir reports ENOENT for a parent it could not make, whatever the reason (a
 * read-only file system, no permission): the real reason, by making the first missing folder
 * below the deepest existing one (removed again at once). Null when that cannot be told.
 */
function firstRefusal(where: string): string | null {
  let missing = path.resolve(where);
  for (let parent = path.dirname(missing); parent !== missing; missing = parent, parent = path.dirname(missing)) {
    if (!existsSync(parent)) continue;
    try {
      mkdirSync(missing);
      rmdirSync(missing);
      return null;
    } catch (err) {
      return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : null;
    }
  }
  return null;
}

/** `storageError` from Node's error code alone (e.g. "ENOSPC" seen through statfs); null for other codes. */
export function storageErrorFor(code: string, where: string, cause?: unknown): LinkError | null {
  const what = STORAGE_CAUSES[code];
  if (what === undefined) return null;
  const fix =
    code === "ENOSPC" || code === "EDQUOT"
      ? "Free some space there, then start Piper Link again."
      : "Make that folder writable, or point HOME (or XDG_STATE_HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR) at a folder you can write, then start Piper Link again.";
  return new LinkError(
    "storage_unavailable",
    `Piper Link cannot write its files in ${where}: ${what} (${code}). ${fix}`,
    cause === undefined ? undefined : { cause },
  );
}

/** True when the file system holding `dir` has no block left for this user (statfs); false when unknown. */
export function diskFull(dir: string): boolean {
  try {
    return statfsSync(dir).bavail === 0;
  } catch {
    return false;
  }
}

/** Runs `write` and turns a file-system refusal into `storageError`'s clear error. */
export async function writingIn<T>(where: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    throw storageError(err, where) ?? err;
  }
}

/**
 * Creates `dir` (and parents) and makes the last level private (0700). Errors: `storage_unavailable`
 * when the folder cannot be made (read-only, no permission, full).
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await writingIn(dir, async () => {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    if (process.platform !== "win32") await fs.chmod(dir, 0o700);
  });
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
    throw storageError(err, path.dirname(file)) ?? err;
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

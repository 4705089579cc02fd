/**
 * A program's content hash: SHA-256 over its executable and the script file it runs, so a grant
 * bound to a program stops matching when either file's content changes. Files are hashed once per
 * file identity, not on every connection.
 */
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { INLINE_SCRIPT } from "../../../shared/process.js";

/** Content hashes by file identity (device, inode, size, mtime, ctime): each file is read once while unchanged. */
const hashes = new Map<string, Promise<string | null>>();

/**
 * SHA-256 (hex) of the file at `file` (read through /proc/<pid>/exe for an executable, which opens
 * the file the process runs even when its path now names another), or null when it cannot be read.
 * Cached by the file's identity, so a 100 MB interpreter is read once, not on every connection.
 */
export async function fileHash(file: string): Promise<string | null> {
  let st: Stats;
  try {
    st = await fs.stat(file);
  } catch {
    return null;
  }
  if (!st.isFile()) return null;
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  let hit = hashes.get(key);
  if (hit === undefined) {
    hit = new Promise<string | null>((resolve) => {
      const hash = createHash("sha256");
      // Large reads: a 100 MB interpreter in 100 chunks rather than 1,600.
      createReadStream(file, { highWaterMark: 1 << 20 })
        .on("data", (chunk) => hash.update(chunk))
        .on("error", () => resolve(null))
        .on("end", () => resolve(hash.digest("hex")));
    });
    if (hashes.size >= 4096) hashes.clear();
    hashes.set(key, hit);
    // A failed read is not remembered: the next lookup tries again.
    void hit.then((h) => {
      if (h === null) hashes.delete(key);
    });
  }
  return hit;
}

/** The file `python -m mod` runs, looked up where Python looks first (the cwd, then PYTHONPATH); null when elsewhere. */
async function moduleFile(mod: string, cwd: string, env: ReadonlyMap<string, string>): Promise<string | null> {
  if (!/^[A-Za-z_][\w.]*$/.test(mod)) return null;
  const rel = mod.split(".").join("/");
  const dirs = [
    cwd,
    ...(env.get("PYTHONPATH") ?? "")
      .split(":")
      .filter((d) => d.length > 0)
      .map((d) => path.resolve(cwd, d)),
  ];
  for (const dir of dirs) {
    for (const candidate of [path.join(dir, `${rel}.py`), path.join(dir, rel, "__main__.py")]) {
      try {
        if ((await fs.stat(candidate)).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

/** The script file a program runs (a path, or the file of `-m mod`), or null for inline code, a package script name or none. */
export async function scriptFile(
  script: string | null,
  cwd: string,
  env: ReadonlyMap<string, string>,
): Promise<string | null> {
  if (script === null || script === INLINE_SCRIPT) return null;
  if (script.startsWith("-m ")) return moduleFile(script.slice(3), cwd, env);
  return path.isAbsolute(script) ? script : null;
}

/**
 * The content hash of a program: SHA-256 over the executable's hash and the script file's (empty
 * when it has none). Null when the executable cannot be read, or the script names a file that cannot.
 */
export async function programHash(executableFile: string, script: string | null): Promise<string | null> {
  const [exe, code] = await Promise.all([
    fileHash(executableFile),
    script === null ? Promise.resolve("") : fileHash(script),
  ]);
  if (exe === null || code === null) return null;
  return createHash("sha256").update(`exe\0${exe}\0script\0${code}`).digest("hex");
}

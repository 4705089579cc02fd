// Piper Link's own folders that cannot be written: a read-only HOME and a full disk. Real file
// systems: a small tmpfs mounted read-only, and one filled to the last block (mounting needs root,
// as CI runs; elsewhere the test says why it cannot run). The person gets `storage_unavailable`
// with the cause and the fix, never `ENOENT … mkdir` or "exited during start".
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { HttpErrorBodySchema } from "../src/shared/errors.js";
import { cli, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";

const mounts: string[] = [];
after(() => {
  stopAll();
  for (const m of mounts) spawnSync("umount", ["-l", m]);
});

/** A fresh tmpfs of `size` at a new folder, or the reason it cannot be mounted here. */
function tmpfs(size: string, readOnly: boolean): string | { cannot: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "piper-storage-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `${readOnly ? "ro," : ""}size=${size}`, "tmpfs", dir], {
    encoding: "utf8",
  });
  if (r.status !== 0) return { cannot: `cannot mount a tmpfs here (${r.stderr.trim()}); needs root` };
  mounts.push(dir);
  return dir;
}

/** `e` with every folder Piper Link writes under `home`. */
function livingIn(e: CliEnv, home: string): CliEnv {
  const env: NodeJS.ProcessEnv = { ...e.env, HOME: home };
  delete env["XDG_RUNTIME_DIR"];
  delete env["XDG_DATA_HOME"];
  delete env["XDG_STATE_HOME"];
  return { ...e, home, env };
}

function startError(e: CliEnv): { code: number; error: string; message: string } {
  const r = cli(e, ["start", "--port", "0", "--json"]);
  const body = HttpErrorBodySchema.parse(JSON.parse(r.stdout));
  return { code: r.code, error: body.error, message: body.message };
}

describe("Piper Link's folders cannot be written", () => {
  it("a read-only HOME: storage_unavailable naming the read-only file system and the fix", async (t) => {
    const home = tmpfs("64k", true);
    if (typeof home !== "string") return t.skip(home.cannot);
    const failed = startError(livingIn(await newEnv(), home));
    assert.equal(failed.error, "storage_unavailable", failed.message);
    assert.equal(failed.code, 1);
    assert.match(failed.message, new RegExp(`cannot write its files in ${home}/`));
    assert.match(failed.message, /read-only \(EROFS\)/);
    assert.match(failed.message, /point HOME .* at a folder you can write/);
  });

  it("a full disk, before the first start and after one: storage_unavailable saying the disk is full", async (t) => {
    const home = tmpfs("64m", false);
    if (typeof home !== "string") return t.skip(home.cannot);
    const e = livingIn(await newEnv(), home);
    // Folders made by a start that worked, then the disk fills up.
    const first = cli(e, ["start", "--port", "0", "--json"]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(cli(e, ["stop"]).code, 0);
    fill(home);
    const again = startError(e);
    assert.equal(again.error, "storage_unavailable", again.message);
    assert.match(again.message, /the disk is full \(ENOSPC\)\. Free some space there/);

    // A new profile on the full disk: its folders cannot even be made.
    const fresh = startError({ ...e, env: { ...e.env, PIPER_LINK_PROFILE: `${e.profile}-b` } });
    assert.equal(fresh.error, "storage_unavailable", fresh.message);
    assert.match(fresh.message, /the disk is full \(ENOSPC\)/);
  });
});

/** Writes into `dir` until the file system has no block left: 1 MiB files, then 4 KiB ones. */
function fill(dir: string): void {
  mkdirSync(path.join(dir, "filler"), { recursive: true });
  let i = 0;
  for (const size of [1 << 20, 4096]) {
    const block = Buffer.alloc(size, 1);
    for (;;) {
      try {
        writeFileSync(path.join(dir, "filler", String(i++)), block);
      } catch {
        break;
      }
    }
  }
}

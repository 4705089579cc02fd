// `npm start` rebuilds the window's bundles only when their sources changed (scripts/build-window.mjs):
// the decision is checked on a real tree in a temporary folder, with the script run as `npm start`
// runs it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

const SCRIPT = path.resolve(import.meta.dirname, "..", "scripts", "build-window.mjs");

function check(root: string): { code: number; says: string } {
  const r = spawnSync(process.execPath, [path.join(root, "scripts", "build-window.mjs"), "--check"], {
    encoding: "utf8",
  });
  return { code: r.status ?? -1, says: r.stdout.trim() };
}

describe("npm start's window build", () => {
  it("builds when there is no build or a source byte changed; not after a touch or a copy that changes nothing", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "piper-build-window-"));
    mkdirSync(path.join(root, "scripts"));
    copyFileSync(SCRIPT, path.join(root, "scripts", "build-window.mjs"));
    mkdirSync(path.join(root, "src", "renderer"), { recursive: true });
    writeFileSync(path.join(root, "src", "renderer", "App.tsx"), "export const a = 1;\n");
    writeFileSync(path.join(root, "electron.vite.config.ts"), "export default {};\n");
    writeFileSync(path.join(root, "package.json"), "{}\n");
    assert.deepEqual(check(root), { code: 1, says: "no build yet" });

    for (const f of ["out/main/index.js", "out/preload/index.cjs", "out/renderer/index.html"]) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), "built\n");
    }
    assert.deepEqual(
      check(root),
      { code: 1, says: "sources changed since the last build" },
      "no record of what the build was made from",
    );

    // What a build records: the hash of its sources (the script's own, run in that tree).
    const hash = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { bundleSourcesHash } from ${JSON.stringify(path.join(root, "scripts", "build-window.mjs"))}; process.stdout.write(bundleSourcesHash(${JSON.stringify(root)}));`,
      ],
      { encoding: "utf8" },
    ).stdout;
    assert.match(hash, /^[0-9a-f]{64}$/);
    writeFileSync(path.join(root, "out", ".sources-sha256"), `${hash}\n`);
    assert.deepEqual(check(root), { code: 0, says: "current" });

    utimesSync(path.join(root, "src", "renderer", "App.tsx"), new Date(), new Date(Date.now() + 60_000));
    assert.deepEqual(check(root), { code: 0, says: "current" }, "a newer modification time alone changes nothing");

    writeFileSync(path.join(root, "src", "renderer", "App.tsx"), "export const a = 2;\n");
    assert.deepEqual(check(root), { code: 1, says: "sources changed since the last build" });
    writeFileSync(path.join(root, "src", "renderer", "App.tsx"), "export const a = 1;\n");
    assert.deepEqual(check(root), { code: 0, says: "current" }, "back to the built bytes");

    writeFileSync(path.join(root, "src", "renderer", "New.tsx"), "export {};\n");
    assert.equal(check(root).code, 1, "a new file counts");
  });
});

// Packaging: electron-builder.yml checked by electron-builder's own validation (its JSON schema,
// shipped in app-builder-lib), the fuses DESIGN.md section 7 requires, every asset the config and
// the shell refer to, and icons that match their SVG source (regenerated and compared byte for byte).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { DebugLogger } from "builder-util/out/DebugLogger.js";
import { validateConfiguration } from "app-builder-lib/out/util/config/config.js";
import type { Configuration } from "app-builder-lib";
import yaml from "js-yaml";
import { tempDir } from "./helpers.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const config = yaml.load(readFileSync(path.join(root, "electron-builder.yml"), "utf8")) as Configuration;

/** Width and height from a PNG's IHDR chunk. */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  assert.equal(b.toString("ascii", 1, 4), "PNG", `${file} is a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe("packaging", () => {
  it("electron-builder.yml passes electron-builder's own validation, and a broken one does not", async () => {
    await validateConfiguration(structuredClone(config), new DebugLogger(false));
    await assert.rejects(
      validateConfiguration(
        { ...structuredClone(config), asar: "yes" } as unknown as Configuration,
        new DebugLogger(false),
      ),
      /asar/,
    );
    await assert.rejects(
      validateConfiguration(
        { ...structuredClone(config), notAnOption: true } as unknown as Configuration,
        new DebugLogger(false),
      ),
      /notAnOption/,
    );
  });

  it("sets the fuses of DESIGN.md section 7 and packs native modules outside the asar", () => {
    assert.equal(config.asar, true);
    const fuses = config.electronFuses;
    assert.ok(fuses);
    assert.equal(fuses.runAsNode, false);
    assert.equal(fuses.enableCookieEncryption, true);
    assert.equal(fuses.enableEmbeddedAsarIntegrityValidation, true);
    assert.equal(fuses.onlyLoadAppFromAsar, true);
    assert.equal(fuses.enableNodeOptionsEnvironmentVariable, false);
    assert.equal(fuses.enableNodeCliInspectArguments, false);
    // The window is served through its own scheme (app-protocol.ts), so file:// needs no extra privileges.
    assert.equal(fuses.grantFileProtocolExtraPrivileges, false);
    assert.deepEqual(
      Object.keys(fuses).sort(),
      [
        "enableCookieEncryption",
        "enableEmbeddedAsarIntegrityValidation",
        "enableNodeCliInspectArguments",
        "enableNodeOptionsEnvironmentVariable",
        "grantFileProtocolExtraPrivileges",
        "onlyLoadAppFromAsar",
        "runAsNode",
      ],
      "every fuse is set on purpose",
    );
    const unpacked = JSON.stringify(config.asarUnpack);
    assert.match(unpacked, /@napi-rs\/keyring/);
    assert.match(unpacked, /better-sqlite3/);
    assert.match(unpacked, /node_modules\/koffi\//);
    assert.match(unpacked, /@koromix/);
    assert.deepEqual(
      ["linux", "mac", "win"].map((p) => JSON.stringify((config as Record<string, { target?: unknown }>)[p]?.target)),
      ['["AppImage","deb"]', '["dmg"]', '["nsis"]'],
    );
  });

  it("every asset the config and the shell refer to exists, in the sizes its name says", () => {
    for (const file of [
      config.mac?.icon,
      config.win?.icon,
      config.mac?.entitlements,
      config.mac?.entitlementsInherit,
    ]) {
      assert.ok(typeof file === "string" && existsSync(path.join(root, file)), `${String(file)} exists`);
    }
    const icons = path.join(root, "assets", "icons");
    const sizes = readdirSync(icons).map((f) => {
      const m = /^(\d+)x(\d+)\.png$/.exec(f);
      assert.ok(m, `${f} is named WxH.png`);
      assert.deepEqual(pngSize(path.join(icons, f)), { width: Number(m[1]), height: Number(m[2]) });
      return Number(m[1]);
    });
    for (const needed of [16, 32, 48, 128, 256, 512, 1024]) assert.ok(sizes.includes(needed), `a ${needed}px app icon`);
    // The tray images src/main/app/index.ts loads, for each state, with macOS template variants.
    for (const state of ["normal", "pending", "signed-out"]) {
      assert.deepEqual(pngSize(path.join(root, "assets", "tray", `tray-${state}.png`)), { width: 22, height: 22 });
      assert.deepEqual(pngSize(path.join(root, "assets", "tray", `tray-${state}@2x.png`)), { width: 44, height: 44 });
      assert.deepEqual(pngSize(path.join(root, "assets", "tray", `tray-${state}Template.png`)), {
        width: 16,
        height: 16,
      });
      assert.deepEqual(pngSize(path.join(root, "assets", "tray", `tray-${state}Template@2x.png`)), {
        width: 32,
        height: 32,
      });
    }
    assert.equal(readFileSync(path.join(root, "assets", "icon.icns")).toString("ascii", 0, 4), "icns");
    assert.equal(readFileSync(path.join(root, "assets", "icon.ico")).readUInt16LE(2), 1, "icon.ico is an icon file");
  });

  it("the committed icons are exactly what scripts/make-icons.mjs makes from assets/icon.svg", async () => {
    const out = await tempDir("piper-link-icons-");
    const r = spawnSync(process.execPath, [path.join(root, "scripts", "make-icons.mjs"), out], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    for (const dir of ["icons", "tray"]) {
      for (const f of readdirSync(path.join(out, dir))) {
        assert.ok(
          readFileSync(path.join(out, dir, f)).equals(readFileSync(path.join(root, "assets", dir, f))),
          `assets/${dir}/${f} is up to date (run npm run icons)`,
        );
      }
    }
  });
});

// The layer and room arrows of docs/architecture.md are held by lint: probe files that import across
// an arrow are linted by the project's own eslint.config.js as if they sat in the folder named by
// their path (ESLint's lintText with a filePath; nothing is written into the tree), and each must be
// reported, while a legal import passes. The rooms' table in the docs and the room folders on disk
// are checked against the rule too, so a new room or arrow cannot slip in without a rule.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ESLint } from "eslint";

const root = path.resolve(import.meta.dirname, "..");
const RULE = "piper-layers/allowed-imports";

// Only the layer rule, and without type information: a probe is not part of any tsconfig, and the
// type-aware rules have nothing to say about where an import points.
const eslint = new ESLint({
  cwd: root,
  overrideConfig: [
    { files: ["**/*.ts", "**/*.tsx"], languageOptions: { parserOptions: { projectService: false, project: null } } },
  ],
  ruleFilter: ({ ruleId }) => ruleId === RULE,
});

/** The layer rule's messages for a probe with `code` at the repository path `file`. */
async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  assert.ok(result, `no lint result for ${file}`);
  const fatal = result.messages.filter((m) => m.fatal === true);
  assert.deepEqual(fatal, [], `the probe ${file} did not parse`);
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
}

/** Asserts that importing `specifier` from the probe `file` fails lint (each form of import is tried). */
async function assertRefused(file: string, specifier: string): Promise<void> {
  const forms = [
    `import { x } from "${specifier}";\nexport const y = x;\n`,
    `import type { X } from "${specifier}";\nexport type Y = X;\n`,
    `export * from "${specifier}";\n`,
    `export const load = () => import("${specifier}");\n`,
    `export type T = typeof import("${specifier}");\n`,
  ];
  for (const code of forms) {
    const errors = await layerErrors(file, code);
    assert.equal(errors.length, 1, `${file} importing ${specifier} passed lint:\n${code}`);
  }
}

/** Asserts that importing `specifier` from the probe `file` passes the layer rule. */
async function assertAllowed(file: string, specifier: string): Promise<void> {
  assert.deepEqual(
    await layerErrors(file, `import { x } from "${specifier}";\nexport const y = x;\n`),
    [],
    `${file} importing ${specifier}`,
  );
}

/** The room folders of the core on disk. */
function roomFolders(): string[] {
  return readdirSync(path.join(root, "src/main/core"), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

/** The rooms' arrows as docs/architecture.md's table "| room | arrows |" states them. */
function documentedArrows(): Map<string, string[]> {
  const doc = readFileSync(path.join(root, "docs/architecture.md"), "utf8");
  const start = doc.indexOf("| room | arrows |");
  assert.ok(start >= 0, "docs/architecture.md has no '| room | arrows |' table");
  const arrows = new Map<string, string[]>();
  for (const line of doc.slice(start).split("\n").slice(2)) {
    const row = /^\| `([a-z-]+)` \| (.*) \|$/.exec(line);
    if (!row?.[1] || row[2] === undefined) break;
    arrows.set(
      row[1],
      [...row[2].matchAll(/`([a-z-]+)`/g)].map((m) => m[1] ?? ""),
    );
  }
  return arrows;
}

/** Every room `room` may import along the documented arrows (itself and everything below). */
function reachable(arrows: Map<string, string[]>, room: string, seen = new Set([room])): Set<string> {
  for (const next of arrows.get(room) ?? []) {
    if (!seen.has(next)) {
      seen.add(next);
      reachable(arrows, next, seen);
    }
  }
  return seen;
}

describe("layers", () => {
  it("src/shared imports only zod and itself: I/O packages, node: modules and other layers fail lint", async () => {
    const probe = "src/shared/layer-probe.ts";
    for (const specifier of [
      "undici",
      "fastify",
      "pg",
      "better-sqlite3",
      "kysely",
      "node:fs",
      "fs",
      "ws",
      "pino",
      "electron",
      "selfsigned",
      "@piper-link/sdk",
    ]) {
      await assertRefused(probe, specifier);
    }
    for (const specifier of [
      "../main/core/link.js",
      "../platform/harden.js",
      "../server/db.js",
      "../renderer/App.js",
      "../../packages/sdk/src/client.js",
      "../../test/helpers.js",
    ]) {
      await assertRefused(probe, specifier);
    }
    await assertAllowed(probe, "zod");
    await assertAllowed(probe, "./errors.js");
  });

  it("the other layers import only what their row lists", async () => {
    const refused: [string, string][] = [
      ["src/platform/probe.ts", "../main/core/link.js"],
      ["src/platform/probe.ts", "undici"],
      ["src/main/core/probe.ts", "../app/shell.js"],
      ["src/main/core/probe.ts", "../cli/main.js"],
      ["src/main/core/probe.ts", "../../server/db.js"],
      ["src/main/core/probe.ts", "kysely"],
      ["src/main/core/probe.ts", "better-sqlite3"],
      ["src/main/core/probe.ts", "electron"],
      ["src/main/core/probe.ts", "@piper-link/sdk"],
      ["src/main/core/runtime/probe.ts", "fastify"],
      // The HTTP stack is the loopback room's (and the sign-in redirect's): no other room serves HTTP.
      ["src/main/core/probe.ts", "fastify"],
      ["src/main/core/pyper/probe.ts", "fastify"],
      ["src/main/core/calls/probe.ts", "@fastify/websocket"],
      ["src/main/core/account/probe.ts", "@fastify/websocket"],
      ["src/main/core/account/probe.ts", "fastify"],
      ["src/main/cli/probe.ts", "../../server/db.js"],
      ["src/main/cli/probe.ts", "../app/shell.js"],
      ["src/main/cli/probe.ts", "electron"],
      ["src/main/app/probe.ts", "../cli/main.js"],
      ["src/main/app/probe.ts", "../../renderer/App.js"],
      ["src/main/app/probe.ts", "@piper-link/sdk"],
      ["src/preload/probe.ts", "../main/core/link.js"],
      ["src/preload/probe.ts", "node:fs"],
      ["src/renderer/probe.tsx", "../main/core/link.js"],
      ["src/renderer/probe.tsx", "../preload/index.js"],
      ["src/renderer/probe.tsx", "electron"],
      ["src/renderer/probe.tsx", "node:fs"],
      ["src/server/probe.ts", "../main/core/link.js"],
      ["src/server/probe.ts", "../../packages/sdk/src/client.js"],
      ["src/server/probe.ts", "@piper-link/sdk"],
      ["src/server/probe.ts", "undici"],
      ["packages/sdk/src/probe.ts", "../../../src/main/core/link.js"],
      ["packages/sdk/src/probe.ts", "../../../src/server/main.js"],
      ["packages/sdk/src/probe.ts", "../../../src/platform/harden.js"],
      ["packages/sdk/src/probe.ts", "undici"],
    ];
    for (const [file, specifier] of refused) await assertRefused(file, specifier);

    const allowed: [string, string][] = [
      ["src/platform/probe.ts", "../shared/errors.js"],
      ["src/main/core/probe.ts", "./authority/resolver.js"],
      ["src/main/core/probe.ts", "../../platform/harden.js"],
      ["src/main/core/loopback/probe.ts", "fastify"],
      ["src/main/core/loopback/probe.ts", "@fastify/websocket"],
      ["src/main/core/pyper/probe.ts", "../loopback/loopback-http.js"],
      ["src/main/cli/probe.ts", "../../server/main.js"],
      ["src/main/cli/probe.ts", "@piper-link/sdk"],
      ["src/main/app/probe.ts", "../core/daemon.js"],
      ["src/preload/probe.ts", "electron"],
      ["src/renderer/probe.tsx", "../shared/control.js"],
      ["src/server/probe.ts", "kysely"],
      ["src/server/probe.ts", "../platform/harden.js"],
      ["packages/sdk/src/probe.ts", "../../../src/shared/protocol.js"],
      ["packages/sdk/src/probe.ts", "ws"],
    ];
    for (const [file, specifier] of allowed) await assertAllowed(file, specifier);
  });

  it("a computed import() cannot be checked and fails lint in a layer", async () => {
    const errors = await layerErrors(
      "src/shared/probe.ts",
      "const name = 'undici';\nexport const load = () => import(name);\n",
    );
    assert.equal(errors.length, 1);
  });

  it("every core room has a row in the docs' arrows table and a rule block", async () => {
    const arrows = documentedArrows();
    assert.deepEqual(
      [...arrows.keys()].sort(),
      roomFolders(),
      "docs/architecture.md's '| room | arrows |' table lists exactly the room folders of src/main/core",
    );
    for (const room of roomFolders()) {
      // A room never imports the core's top-level files; only a room's own block says so (the core's
      // block lets top-level files import each other), so this finds a room without a block.
      const errors = await layerErrors(
        `src/main/core/${room}/probe.ts`,
        `import { x } from "../link.js";\nexport const y = x;\n`,
      );
      assert.equal(errors.length, 1, `the room ${room}/ may import ../link.js: it has no rule block`);
      assert.match(errors[0] ?? "", new RegExp(`the core room ${room}/`));
    }
  });

  it("each core room imports exactly the rooms the documented arrows reach", async () => {
    const arrows = documentedArrows();
    // The drawing itself, so a table edited to say otherwise is caught here and not only by lint.
    assert.deepEqual(arrows.get("runtime"), []);
    assert.ok(!reachable(arrows, "loopback").has("authority"), "loopback must not reach authority");
    assert.ok(!reachable(arrows, "authority").has("account"), "authority must not reach account");
    for (const room of roomFolders()) {
      const mayReach = reachable(arrows, room);
      for (const other of roomFolders()) {
        if (other === room) continue;
        const probe = `src/main/core/${room}/probe.ts`;
        if (mayReach.has(other)) await assertAllowed(probe, `../${other}/x.js`);
        else await assertRefused(probe, `../${other}/x.js`);
      }
    }
  });
});

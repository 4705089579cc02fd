// Lint: typescript-eslint (type-aware) plus the layers and core rooms of docs/architecture.md as
// allow-lists per folder (scripts/eslint-layers.mjs resolves each relative import to the file it
// reaches, so a layer is recognised by where the target is, not by how the path is spelled).
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";
import layersPlugin from "./scripts/eslint-layers.mjs";

/**
 * The core's rooms (src/main/core/<room>/) and the arrows docs/architecture.md draws between them:
 * a room imports the rooms its arrows reach, directly or further down the same arrows, and never a
 * room above it or the core's top-level files (link.ts, serving.ts, …), which sit above them all.
 * A new room needs an entry here (test/layers.test.ts fails on a room folder without one).
 */
export const ROOM_ARROWS = {
  account: ["authority", "loopback"],
  authority: ["process", "runtime"],
  loopback: ["process", "runtime"],
  calls: ["authority"],
  pyper: ["authority", "loopback"],
  presence: ["authority", "vault"],
  vault: ["runtime"],
  process: [],
  runtime: [],
};

/** Every room `room` may import: itself and all rooms below it along the arrows. */
function roomsBelow(room, seen = new Set([room])) {
  for (const next of ROOM_ARROWS[room]) {
    if (!seen.has(next)) {
      seen.add(next);
      roomsBelow(next, seen);
    }
  }
  return seen;
}

const SHARED = "src/shared/";
const PLATFORM = "src/platform/";
const CORE = "src/main/core/";
/** Node's built-ins (`node:` prefix; the bare names are not allowed anywhere the rule applies). */
const NODE = "node:";
const CORE_PACKAGES = [
  NODE,
  "pino",
  "pino-roll",
  "undici",
  "ws",
  "zod",
  "escape-html",
  "eventsource-parser",
  "@simplewebauthn/server",
];

/**
 * Packages only some rooms may import: the one HTTP stack of the loopback listeners
 * (`loopback/loopback-http.ts`) is Fastify; the rooms that answer through it (pyper/, account/) use
 * the stack's own types and never name Fastify.
 */
const ROOM_PACKAGES = { loopback: ["fastify", "@fastify/websocket"] };

/** A config block holding the files `files` to the allow-lists of docs/architecture.md's layer table. */
function layer(name, files, paths, packages, extra = {}) {
  return { files, ...extra, rules: { "piper-layers/allowed-imports": ["error", { layer: name, paths, packages }] } };
}

/**
 * The layers table of docs/architecture.md, one block per row (and per core room): the folders and
 * files a relative import may reach, and the packages a layer may import by name.
 */
export const LAYER_BLOCKS = [
  // escape-html is the one package besides zod: a pure string function, no I/O, for the plain pages
  // the core and the authority share (shared/page-style.ts); documented in docs/architecture.md.
  layer("src/shared", ["src/shared/**"], [SHARED], ["zod", "escape-html"]),
  layer("src/platform", ["src/platform/**"], [PLATFORM, SHARED], [NODE, "koffi", "selfsigned"]),
  layer("src/main/core", ["src/main/core/**"], [CORE, SHARED, PLATFORM], CORE_PACKAGES),
  ...Object.keys(ROOM_ARROWS).map((room) =>
    layer(
      `the core room ${room}/`,
      [`src/main/core/${room}/**`],
      [...[...roomsBelow(room)].map((r) => `${CORE}${r}/`), SHARED, PLATFORM],
      [...CORE_PACKAGES, ...(ROOM_PACKAGES[room] ?? [])],
    ),
  ),
  // A composition root like the shell; it also runs the authority (its entry only) and acts as an
  // agent through the SDK package (`run`, `call`, `mcp`).
  layer(
    "src/main/cli",
    ["src/main/cli/**"],
    ["src/main/cli/", CORE, SHARED, PLATFORM, "src/server/main.ts"],
    [NODE, "commander", "zod", "@modelcontextprotocol/sdk", "@piper-link/sdk"],
  ),
  layer("src/main/app", ["src/main/app/**"], ["src/main/app/", CORE, SHARED, PLATFORM], [NODE, "electron"]),
  layer("src/preload", ["src/preload/**"], ["src/preload/", SHARED], ["electron"]),
  layer(
    "src/renderer",
    ["src/renderer/**"],
    ["src/renderer/", SHARED],
    ["react", "react-dom", "lucide-react", "@simplewebauthn/browser", "zod"],
    {
      languageOptions: { globals: { ...globals.browser } },
    },
  ),
  layer(
    "src/server",
    ["src/server/**"],
    ["src/server/", SHARED, PLATFORM],
    [
      NODE,
      "fastify",
      "@fastify/cookie",
      "@fastify/formbody",
      "fastify-type-provider-zod",
      "better-sqlite3",
      "kysely",
      "pg",
      "commander",
      "zod",
    ],
  ),
  // The SDK package's dependencies are ws and zod (packages/sdk/package.json) and nothing else.
  layer("packages/sdk", ["packages/sdk/src/**"], ["packages/sdk/src/", SHARED], [NODE, "ws", "zod"]),
];

export default tseslint.config(
  { ignores: ["dist/**", "packages/*/dist/**", "out/**", "node_modules/**", "bench/results/**", "test-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.js", "scripts/*.mjs", "bin/*.js"] },
        tsconfigRootDir: import.meta.dirname,
      },
      globals: { ...globals.node },
    },
    plugins: { "piper-layers": layersPlugin },
    rules: {
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      "@typescript-eslint/no-explicit-any": "error",
      // node:test returns promises from describe/it that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", name: ["describe", "it", "test", "suite"], package: "node:test" },
          ],
        },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-confusing-void-expression": [
        "error",
        { ignoreArrowShorthand: true, ignoreVoidOperator: true, ignoreVoidReturningFunctions: true },
      ],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
  ...LAYER_BLOCKS,
  // One environment reader per composition root (docs/architecture.md, "Environment"): the core
  // library, src/platform and the authority below its entry get the environment as typed options.
  {
    files: ["src/main/core/**", "src/platform/**", "src/server/**"],
    ignores: ["src/server/main.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        {
          object: "process",
          property: "env",
          message:
            "Read the environment at a composition root (readLinkEnv in core/runtime/env.ts, readAuthorityEnv in server/env.ts) and pass what is needed as an option.",
        },
      ],
      "no-restricted-imports": [
        "error",
        {
          paths: [
            {
              name: "node:process",
              importNames: ["env"],
              message: "Read the environment at a composition root and pass it down.",
            },
          ],
        },
      ],
    },
  },
);

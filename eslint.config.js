// Lint: typescript-eslint (type-aware) plus the layer arrows of DESIGN.md section 2 as import
// restrictions per folder. Every import in this project is relative, so a layer is recognised by
// the folder name in the import path.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

/** Builds a no-restricted-imports rule that forbids the given layers (and optionally packages). */
function forbid(layers, message, packages = []) {
  const patterns = layers.map((layer) => ({
    // Relative paths only: a package whose name ends in a layer's name (@simplewebauthn/server) is not that layer.
    regex: `^(\\.\\.?/)+([^/]+/)*${layer.replace("/", "\\/")}(/|$)`,
    message: `${message} (DESIGN.md section 2)`,
  }));
  return [
    "error",
    {
      patterns: [
        ...patterns,
        ...packages.map((p) => ({ regex: `^${p}`, message: `${message} (DESIGN.md section 2)` })),
      ],
    },
  ];
}

/** The agent SDK is its own package (packages/sdk); only the CLI may use it. */
const SDK = "@piper-link/sdk";
const NODE_IO = ["node:", "fs$", "path$", "child_process$", "ws$", "pino$", "@napi-rs/", "electron$", "commander$"];

export default tseslint.config(
  { ignores: ["dist/**", "packages/*/dist/**", "out/**", "node_modules/**", "bench/results/**", "test-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js", "scripts/*.mjs", "bin/*.js"] }, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node },
    },
    rules: {
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      "@typescript-eslint/no-explicit-any": "error",
      // node:test returns promises from describe/it that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": ["error", { allowForKnownSafeCalls: [{ from: "package", name: ["describe", "it", "test", "suite"], package: "node:test" }] }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-confusing-void-expression": ["error", { ignoreArrowShorthand: true, ignoreVoidOperator: true, ignoreVoidReturningFunctions: true }],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ["src/shared/**"],
    rules: { "no-restricted-imports": forbid(["main", "platform", "renderer", "preload", "server", "sdk"], "src/shared imports nothing with I/O and no other layer", [...NODE_IO, SDK]) },
  },
  {
    files: ["src/platform/**"],
    // Node-only code for this machine's OS (process hardening), shared by the Link, the authority
    // and the CLI: a leaf that imports nothing of the project but shared.
    rules: { "no-restricted-imports": forbid(["main", "renderer", "preload", "server", "sdk"], "src/platform imports shared only", ["electron$", SDK]) },
  },
  {
    files: ["src/main/core/**"],
    rules: { "no-restricted-imports": forbid(["app", "cli", "renderer", "preload", "server", "sdk"], "the core is plain Node: no Electron, no UI, no CLI", ["electron$", SDK]) },
  },
  {
    files: ["src/main/cli/**"],
    // The CLI is a composition root like the Electron shell: it may also run the authority
    // (`piper-link authority`) and act as an agent through the SDK (`piper-link run`).
    rules: { "no-restricted-imports": forbid(["app", "renderer", "preload"], "the CLI uses the core, the authority entry and (for `run`) the SDK only", ["electron$"]) },
  },
  {
    files: ["src/main/app/**"],
    rules: { "no-restricted-imports": forbid(["cli", "renderer", "preload", "server", "sdk"], "the Electron shell calls the core only", [SDK]) },
  },
  {
    files: ["src/preload/**"],
    rules: { "no-restricted-imports": forbid(["main", "platform", "renderer", "server", "sdk"], "the preload imports shared and electron only", [SDK]) },
  },
  {
    files: ["src/renderer/**"],
    languageOptions: { globals: { ...globals.browser } },
    rules: { "no-restricted-imports": forbid(["main", "platform", "preload", "server", "sdk"], "the renderer talks to the core only through LinkApi from src/shared", [...NODE_IO, SDK]) },
  },
  {
    files: ["src/server/**"],
    rules: { "no-restricted-imports": forbid(["main", "renderer", "preload", "sdk"], "the authority never imports the Link or the agent SDK", [SDK]) },
  },
  {
    // The SDK package (@piper-link/sdk): shared and Node only. Its package.json lists ws and zod and
    // nothing else, so no other package may be imported either.
    files: ["packages/sdk/src/**"],
    rules: {
      "no-restricted-imports": forbid(["main", "platform", "renderer", "preload", "server"], "the agent SDK imports shared, node: and its own dependencies (ws, zod) only: never the Link or the authority", [
        "(?!ws$|zod$|node:|\\.)",
      ]),
    },
  },
);

// The layer rule of eslint.config.js: every import of a file must land on an allow-list (VS Code's
// code-layering, Signal's categorised packages), never merely miss a deny-list. A deny-list lets
// through whatever nobody thought of; an allow-list fails on the first new package or folder.
//
// Relative imports are resolved against the importing file, so a target is known by where it is
// in the repository (`src/main/core/authority/resolver.ts`), not by how many `../` reach it.
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`; `node:fs` → `node:`. */
function packageOf(specifier) {
  if (specifier.startsWith("node:")) return "node:";
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** `a/b.js`, `a/b.ts` → `a/b`: an import names the compiled `.js`, the source is `.ts`. */
function withoutExtension(file) {
  return file.replace(/\.(js|jsx|mjs|ts|tsx|mts)$/, "");
}

/** The repository-relative, `/`-separated path of `file`. */
function fromRoot(file) {
  return path.relative(ROOT, file).split(path.sep).join("/");
}

/** @type {import("eslint").Rule.RuleModule} */
const allowedImports = {
  meta: {
    type: "problem",
    docs: { description: "An import must land on the allow-list of its layer or core room (docs/architecture.md)" },
    schema: [
      {
        type: "object",
        properties: {
          // Repository-relative folders (ending in `/`) or files a relative import may reach.
          paths: { type: "array", items: { type: "string" } },
          // Package names (`@scope/name`, `name`), or `node:` for Node's built-ins.
          packages: { type: "array", items: { type: "string" } },
          layer: { type: "string" },
        },
        required: ["paths", "packages", "layer"],
        additionalProperties: false,
      },
    ],
    messages: {
      path: "{{layer}} may import only {{allowed}}: '{{specifier}}' is {{target}} (docs/architecture.md)",
      package: "{{layer}} may import only the packages {{allowed}}: not '{{specifier}}' (docs/architecture.md)",
      computed:
        "{{layer}}: an import whose specifier is computed cannot be checked against the layers; name it literally",
    },
  },
  create(context) {
    const { paths, packages, layer } = context.options[0];
    const here = path.dirname(context.filename);

    function check(node, specifier) {
      if (specifier.startsWith(".") || specifier.startsWith("/")) {
        const target = fromRoot(path.resolve(here, specifier));
        if (
          paths.some((allowed) =>
            allowed.endsWith("/") ? target.startsWith(allowed) : withoutExtension(target) === withoutExtension(allowed),
          )
        )
          return;
        context.report({ node, messageId: "path", data: { layer, allowed: paths.join(", "), specifier, target } });
        return;
      }
      if (packages.includes(packageOf(specifier))) return;
      context.report({
        node,
        messageId: "package",
        data: { layer, allowed: packages.length === 0 ? "(none)" : packages.join(", "), specifier },
      });
    }

    function checkSource(node, source) {
      if (source?.type === "Literal" && typeof source.value === "string") check(node, source.value);
      else if (source?.type === "TemplateLiteral" && source.expressions.length === 0)
        check(node, source.quasis[0].value.cooked);
      else context.report({ node, messageId: "computed", data: { layer } });
    }

    return {
      ImportDeclaration: (node) => checkSource(node, node.source),
      ExportNamedDeclaration: (node) => node.source && checkSource(node, node.source),
      ExportAllDeclaration: (node) => checkSource(node, node.source),
      ImportExpression: (node) => checkSource(node, node.source),
      // `typeof import("x")` and `import x = require("x")` in TypeScript.
      TSImportType: (node) =>
        checkSource(node, node.argument.type === "TSLiteralType" ? node.argument.literal : node.argument),
      TSExternalModuleReference: (node) => checkSource(node, node.expression),
    };
  },
};

export default { meta: { name: "piper-layers" }, rules: { "allowed-imports": allowedImports } };

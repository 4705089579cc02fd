// Dead exports: an export of src/ or packages/sdk/src that no other file imports (tests, the bench
// and the e2e suite count as importers). Run by `npm run lint`; exits 1 and lists them.
//
// Each TypeScript project of the repository (tsconfig.json's references: the node code, the window,
// the tests, the SDK package) is loaded with the compiler API, every import in it is resolved to the
// declaration it reaches (through re-exports), and an export whose declaration nobody reached is
// dead. The public surface of the SDK package (its index) counts as used, and so does a use inside
// the declaring file (a schema composed into the file's union, an options type in an exported
// signature: the export lets a caller name it), as knip's ignoreExportsUsedInFile.
//
// Why not knip or ts-prune: neither is installed, ts-prune is unmaintained, and knip brings its own
// resolver and plugin set for a question the compiler that builds the project already answers.
import path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(import.meta.dirname, "..");
const PROJECTS = ["tsconfig.node.json", "tsconfig.web.json", "tsconfig.test.json", "packages/sdk/tsconfig.json"];
/** Files whose every export is public API (the SDK package's entry). */
const PUBLIC_ENTRIES = ["packages/sdk/src/index.ts"];
/**
 * Exports the plain JS launchers load from dist/ by a computed path (scripts/start.mjs, bin/), which
 * no compiler sees: `file::name`, kept in step with those files.
 */
const USED_BY_SCRIPTS = [
  "src/main/cli/main.ts::main",
  "src/main/core/runtime/keychain-choice.ts::KEYCHAIN_QUESTION",
  "src/main/core/runtime/keychain-choice.ts::keychainOffer",
  "src/main/core/runtime/settings.ts::readKeychainChoice",
  "src/main/core/runtime/paths.ts::resolveLinkPaths",
  "src/main/core/runtime/daemon-flags.ts::DAEMON_NODE_FLAGS",
];
/** The folders whose exports are checked. */
const CHECKED = ["src/", "packages/sdk/src/"];

const rel = (file) => path.relative(ROOT, file).split(path.sep).join("/");
const inRepo = (file) => !rel(file).startsWith("..") && !rel(file).includes("node_modules/") && !file.endsWith(".d.ts");
/** A declaration's key, the same in every project that compiles its file. */
const keyOf = (decl) => `${rel(decl.getSourceFile().fileName)}#${decl.getStart()}`;

/** Keys of what is used: a declaration's position key, or `file::name` (USED_BY_SCRIPTS). */
const used = new Set(USED_BY_SCRIPTS);

/**
 * A compiler host that reads the bench's imports of the built Link (`../dist/main/x.js`) as the
 * sources they are built from (`src/main/x.ts`), so the check needs no build and sees those uses.
 */
function hostFor(options) {
  const host = ts.createCompilerHost(options);
  const distDir = path.join(ROOT, "dist") + path.sep;
  host.resolveModuleNameLiterals = (literals, containingFile, redirected, compilerOptions) =>
    literals.map(({ text }) => {
      const target = text.startsWith(".") ? path.resolve(path.dirname(containingFile), text) : "";
      if (target.startsWith(distDir) && target.endsWith(".js")) {
        return {
          resolvedModule: {
            resolvedFileName: path.join(ROOT, "src", target.slice(distDir.length, -".js".length) + ".ts"),
            extension: ts.Extension.Ts,
            isExternalLibraryImport: false,
          },
        };
      }
      return ts.resolveModuleName(text, containingFile, compilerOptions, host, undefined, redirected);
    });
  return host;
}

/** rel(file) → [{ name, key, line }] for every export declared in that file. */
const exported = new Map();

for (const project of PROJECTS) {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    path.join(ROOT, project),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${project}`);
  // Project references would substitute built .d.ts files for sources; read the sources themselves.
  const options = { ...parsed.options, noEmit: true, composite: false, incremental: false };
  const program = ts.createProgram({ rootNames: parsed.fileNames, options, host: hostFor(options) });
  const checker = program.getTypeChecker();

  /** Marks the declaration(s) a symbol ends at, following aliases (imports, re-exports). */
  const markSymbol = (symbol) => {
    if (!symbol) return;
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    for (const decl of target.declarations ?? []) used.add(keyOf(decl));
  };
  /** Marks every export of the module a specifier names (namespace imports, `import()`). */
  const markModule = (specifier) => {
    const moduleSymbol = checker.getSymbolAtLocation(specifier);
    if (moduleSymbol) for (const symbol of checker.getExportsOfModule(moduleSymbol)) markSymbol(symbol);
  };

  for (const file of program.getSourceFiles()) {
    if (!inRepo(file.fileName)) continue;
    const moduleSymbol = checker.getSymbolAtLocation(file);
    const exportedHere = new Set();
    const contractTypes = [];
    if (moduleSymbol) {
      for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
        if (symbol.flags & ts.SymbolFlags.Alias) continue; // a re-export: its target is checked where it is declared
        for (const decl of symbol.declarations ?? []) {
          if (decl.getSourceFile() !== file) continue;
          exportedHere.add(decl);
          if (rel(file.fileName).startsWith("src/shared/") && ts.isTypeAliasDeclaration(decl)) contractTypes.push(decl);
          if (!exported.has(rel(file.fileName))) exported.set(rel(file.fileName), new Map());
          const { line } = file.getLineAndCharacterOfPosition(decl.getStart());
          exported.get(rel(file.fileName)).set(keyOf(decl), { name: symbol.name, line: line + 1 });
        }
      }
      if (PUBLIC_ENTRIES.includes(rel(file.fileName)))
        for (const symbol of checker.getExportsOfModule(moduleSymbol)) markSymbol(symbol);
    }

    // A contract in src/shared is a schema (or constant) with the type derived from it
    // (`z.infer<typeof XSchema>`, `keyof typeof X`): the type is part of the exported contract, used
    // or not, as its schema is (and shared contracts change only by adding).
    for (const alias of contractTypes) {
      const derived = (node) =>
        (ts.isTypeQueryNode(node) &&
          [...exportedHere].some(
            (decl) => decl !== alias && checker.getSymbolAtLocation(node.exprName)?.declarations?.includes(decl),
          )) ||
        ts.forEachChild(node, derived) === true;
      if (derived(alias.type)) used.add(keyOf(alias));
    }

    const visit = (node) => {
      if (ts.isImportDeclaration(node) && node.importClause) {
        const clause = node.importClause;
        if (clause.name) markSymbol(checker.getSymbolAtLocation(clause.name));
        const bindings = clause.namedBindings;
        if (bindings && ts.isNamespaceImport(bindings)) markModule(node.moduleSpecifier);
        if (bindings && ts.isNamedImports(bindings))
          for (const element of bindings.elements) markSymbol(checker.getSymbolAtLocation(element.name));
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
        // `export * from` is followed when someone imports through it; named re-exports count at once.
        if (node.exportClause && ts.isNamedExports(node.exportClause)) {
          for (const element of node.exportClause.elements) markSymbol(checker.getSymbolAtLocation(element.name));
        }
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0]
      ) {
        markModule(node.arguments[0]);
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
        markModule(node.argument.literal);
      } else if (
        ts.isIdentifier(node) &&
        !(node.parent && "name" in node.parent && node.parent.name === node && exportedHere.has(node.parent))
      ) {
        // A use inside the declaring file keeps the export (a schema composed into the file's union,
        // an options type in an exported signature); knip's ignoreExportsUsedInFile.
        const symbol = checker.getSymbolAtLocation(node);
        for (const decl of symbol?.declarations ?? [])
          if (decl.getSourceFile() === file && exportedHere.has(decl)) used.add(keyOf(decl));
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
}

const dead = [];
for (const [file, exports] of exported) {
  if (!CHECKED.some((folder) => file.startsWith(folder))) continue;
  for (const [key, { name, line }] of exports)
    if (!used.has(key) && !used.has(`${file}::${name}`)) dead.push(`${file}:${line}  ${name}`);
}
dead.sort();
if (dead.length > 0) {
  console.error(
    `${dead.length} export(s) no other file imports (remove them, or the export keyword, or use them):\n${dead.map((d) => `  ${d}`).join("\n")}`,
  );
  process.exit(1);
}
console.log("dead exports: none");

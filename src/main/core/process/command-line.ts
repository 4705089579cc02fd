/**
 * What a program's command line says it runs and loads, read with each interpreter's own option
 * grammar (node, python, deno, bun, ruby, perl, php, the shells): the script or entry point that is
 * the program's identity, and the options and environment variables that load other code into it.
 * Pure: the caller reads argv and the environment from the OS (describe-linux.ts, acting-for.ts).
 */
import path from "node:path";
import { INLINE_SCRIPT } from "../../../shared/process.js";

/**
 * Interpreters whose identity is the script they run, by executable base name, with their option
 * grammar: options that take a value (`-r x`, `--require=x`, glued `-rx` where the interpreter
 * accepts it), those that make the command line inline code, those that name a module, and those
 * that load other code into the program (part of the program: `loads`). `env` names the variables
 * that load code into it (`NODE_OPTIONS`, `PYTHONPATH`…); `envPrefixes` whole families of them.
 */
interface InterpreterRules {
  valued: ReadonlySet<string>;
  inline: ReadonlySet<string>;
  module: ReadonlySet<string>;
  /** Options (of `valued` or flags) that load other code, or change where imports come from. */
  loading: ReadonlySet<string>;
  /** Subcommands before the script (`deno run x.ts`, `bun run x.ts`). */
  subcommands: ReadonlySet<string>;
  /** Short options take their value glued to them and may be grouped (`-uc CODE`, `-cCODE`, `-mpkg`): Python, shells, Perl, Ruby. */
  gluedShort: boolean;
  env: ReadonlySet<string>;
  envPrefixes?: readonly string[];
  /** Flags that make the interpreter ignore its environment variables (`python -E`, `-I`). */
  ignoresEnv?: ReadonlySet<string>;
}

const set = (...items: string[]): ReadonlySet<string> => new Set(items);
const SHELL: InterpreterRules = {
  valued: set("-o", "+o", "-O", "+O", "--rcfile", "--init-file"),
  inline: set("-c"),
  module: set(),
  loading: set("--rcfile", "--init-file"),
  subcommands: set(),
  gluedShort: true,
  env: set("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS"),
  // Exported shell functions replace commands the script runs.
  envPrefixes: ["BASH_FUNC_"],
};
const NODE_LOADING = [
  "-r",
  "--require",
  "--import",
  "--loader",
  "--experimental-loader",
  "-C",
  "--conditions",
  "--env-file",
  "--env-file-if-exists",
  "--experimental-policy",
  "--experimental-config-file",
  "--inspect",
  "--inspect-brk",
  "--inspect-wait",
  "--inspect-port",
  "--debug-port",
  "--preserve-symlinks",
  "--preserve-symlinks-main",
  "--experimental-default-type",
  "--watch-path",
  "--openssl-config",
  "--openssl-shared-config",
];
const INTERPRETERS: ReadonlyArray<[RegExp, InterpreterRules]> = [
  [
    /^(node|nodejs)$/,
    {
      valued: set(
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "-C",
        "--conditions",
        "--input-type",
        "--title",
        "--env-file",
        "--env-file-if-exists",
        "--inspect-port",
        "--debug-port",
        "--disable-warning",
        "--redirect-warnings",
        "--stack-trace-limit",
        "--watch-path",
        "--experimental-policy",
        "--experimental-config-file",
        "--experimental-default-type",
        "--openssl-config",
      ),
      inline: set("-e", "--eval", "-p", "--print"),
      module: set(),
      loading: set(...NODE_LOADING),
      subcommands: set(),
      gluedShort: false,
      env: set("NODE_OPTIONS", "NODE_PATH", "NODE_REPL_EXTERNAL_MODULE"),
    },
  ],
  [
    /^python(\d+(\.\d+)?)?$/,
    {
      valued: set("-W", "-X", "--check-hash-based-pycs"),
      inline: set("-c"),
      module: set("-m"),
      loading: set(),
      subcommands: set(),
      gluedShort: true,
      // HOME: the user site-packages (~/.local/lib/pythonX.Y/site-packages), whose .pth files run code at start.
      env: set(
        "HOME",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "PYTHONINSPECT",
        "PYTHONPLATLIBDIR",
        "PYTHONEXECUTABLE",
        "PYTHONSAFEPATH",
        "PYTHONNOUSERSITE",
        "PYTHONWARNINGS",
        "PYTHONBREAKPOINT",
        "PYTHONDEVMODE",
      ),
      ignoresEnv: set("-E", "-I"),
    },
  ],
  [
    /^deno$/,
    {
      valued: set(
        "-c",
        "--config",
        "--import-map",
        "-L",
        "--log-level",
        "--location",
        "--seed",
        "--v8-flags",
        "--cert",
        "--env-file",
        "--preload",
      ),
      inline: set("eval"),
      module: set(),
      loading: set(
        "-c",
        "--config",
        "--import-map",
        "--env-file",
        "--preload",
        "--inspect",
        "--inspect-brk",
        "--inspect-wait",
      ),
      subcommands: set("run", "serve", "test", "bench", "compile", "check"),
      gluedShort: false,
      env: set("DENO_DIR", "DENO_CERT", "DENO_AUTH_TOKENS"),
    },
  ],
  [
    /^bun$/,
    {
      valued: set("-r", "--preload", "--cwd", "-c", "--config", "--env-file", "--tsconfig-override", "--conditions"),
      inline: set("-e", "--eval", "-p", "--print"),
      module: set(),
      loading: set(
        "-r",
        "--preload",
        "--cwd",
        "-c",
        "--config",
        "--env-file",
        "--tsconfig-override",
        "--conditions",
        "--inspect",
        "--inspect-brk",
        "--inspect-wait",
      ),
      subcommands: set("run", "test", "x"),
      gluedShort: false,
      env: set("NODE_OPTIONS", "NODE_PATH", "BUN_CONFIG_PRELOAD"),
    },
  ],
  [
    /^ruby(\d+(\.\d+)*)?$/,
    {
      valued: set("-I", "-r", "-C", "-E", "--encoding"),
      inline: set("-e"),
      module: set(),
      loading: set("-I", "-r", "-C"),
      subcommands: set(),
      gluedShort: true,
      env: set("RUBYOPT", "RUBYLIB", "RUBYLIB_PREFIX"),
    },
  ],
  [
    /^perl(\d+(\.\d+)*)?$/,
    {
      valued: set("-I", "-M", "-m"),
      inline: set("-e", "-E"),
      module: set(),
      loading: set("-I", "-M", "-m", "-d"),
      subcommands: set(),
      gluedShort: true,
      env: set("PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB"),
    },
  ],
  [
    /^(php(\d+(\.\d+)*)?)$/,
    {
      valued: set("-c", "-d", "-z"),
      inline: set("-r"),
      module: set(),
      loading: set("-c", "-d", "-z"),
      subcommands: set(),
      gluedShort: false,
      env: set("PHPRC", "PHP_INI_SCAN_DIR"),
    },
  ],
  [/^(sh|bash|zsh|dash|ksh|mksh|fish|ash)$/, SHELL],
];

/** Variables that load code into any dynamically linked program (ld.so(8)). */
/**
 * Variables that load code into any program: the dynamic linker's, and OpenSSL's configuration
 * (an `OPENSSL_CONF` file can load a shared object as an engine or provider into node, python,
 * curl… at their first TLS use; `OPENSSL_MODULES`/`OPENSSL_ENGINES` say where from).
 */
const LINKER_ENV = [
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
  "GCONV_PATH",
  "GLIBC_TUNABLES",
  "OPENSSL_CONF",
  "OPENSSL_MODULES",
  "OPENSSL_ENGINES",
];

/** What the command line of a program says it runs and loads (see `readCommand`). */
export interface CommandFacts {
  /** As `entryPoint` reports it. */
  script: string | null;
  /** The script argument as written, when it is a relative path resolved against the cwd; else null. */
  relativeScript: string | null;
  /** Code-loading options from the command line, as written (`--require=/x.cjs`, `-r ./x.cjs`). */
  options: string[];
}

function rulesFor(
  executable: string | null,
  argv: readonly string[],
): { name: string; rules: InterpreterRules } | null {
  const name = path.basename(executable ?? argv[0] ?? "");
  const byExe = INTERPRETERS.find(([re]) => re.test(name))?.[1];
  if (byExe !== undefined) return { name, rules: byExe };
  const byArg =
    argv[0] === undefined ? undefined : INTERPRETERS.find(([re]) => re.test(path.basename(argv[0] ?? "")))?.[1];
  return byArg === undefined ? null : { name, rules: byArg };
}

/**
 * Reads an interpreter's command line with its option grammar: the script or entry point it runs
 * (see `entryPoint`) and the options that load other code. Long options may carry their value after
 * `=` (`--eval=CODE`, `--require=./x.cjs`); for interpreters that glue short options (Python, shells,
 * Perl, Ruby) `-cCODE`, `-uc CODE` and `-mpkg` are read as Python reads them. Anything after inline
 * code or the script belongs to the program, not the interpreter.
 */
export function readCommand(executable: string | null, argv: readonly string[], cwd: string | null): CommandFacts {
  const found = rulesFor(executable, argv);
  const none: CommandFacts = { script: null, relativeScript: null, options: [] };
  if (found === null) return none;
  const { name, rules } = found;
  const options: string[] = [];
  const done = (script: string | null, relativeScript: string | null = null): CommandFacts => ({
    script,
    relativeScript,
    options,
  });
  const file = (arg: string): CommandFacts => {
    if (cwd !== null && !path.isAbsolute(arg)) return done(path.resolve(cwd, arg), arg);
    return done(arg, path.isAbsolute(arg) ? null : arg);
  };
  let subcommandSeen = false;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      const next = argv[i + 1];
      return next === undefined ? done(null) : file(next);
    }
    if (rules.gluedShort && /^-[a-zA-Z]/.test(arg) && !arg.startsWith("--")) {
      // Python's getopt (and sh, perl, ruby): flags may be grouped, and an option that takes a value
      // takes the rest of the argument, or the next argument when nothing follows it.
      let consumedNext = false;
      for (let j = 1; j < arg.length; j++) {
        const opt = `-${arg[j] ?? ""}`;
        const rest = arg.slice(j + 1);
        if (rules.inline.has(opt)) return done(INLINE_SCRIPT);
        if (rules.module.has(opt)) {
          const mod = rest.length > 0 ? rest : argv[i + 1];
          return done(mod === undefined ? null : `-m ${mod}`);
        }
        if (rules.valued.has(opt)) {
          const value = rest.length > 0 ? rest : argv[i + 1];
          if (rest.length === 0) consumedNext = true;
          if (rules.loading.has(opt)) options.push(`${opt} ${value ?? ""}`.trim());
          break;
        }
        if (rules.loading.has(opt)) options.push(opt);
      }
      if (consumedNext) i += 1;
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const option = eq > 0 ? arg.slice(0, eq) : arg;
    const grouped =
      !rules.gluedShort &&
      /^-[a-zA-Z]{2,}$/.test(arg) &&
      [...rules.inline].some((o) => /^-[a-zA-Z]$/.test(o) && arg.includes(o.slice(1)));
    if (rules.inline.has(option) || grouped) return done(INLINE_SCRIPT);
    if (rules.module.has(option)) {
      const mod = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
      return done(mod === undefined ? null : `-m ${mod}`);
    }
    if (rules.valued.has(option)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
      if (rules.loading.has(option)) options.push(eq > 0 ? arg : `${option} ${value ?? ""}`.trim());
      if (eq < 0) i += 1;
      continue;
    }
    if (arg === "-") return done(null);
    if (arg.startsWith("-") || arg.startsWith("+")) {
      if (
        rules.loading.has(option) ||
        [...rules.loading].some((o) => o.startsWith("--inspect") && option.startsWith("--inspect"))
      )
        options.push(arg);
      continue;
    }
    if (!subcommandSeen && rules.subcommands.has(arg)) {
      subcommandSeen = true;
      continue;
    }
    if (name === "deno" && arg === "task") return done(`task ${argv[i + 1] ?? ""}`.trim());
    // `bun run dev` names a package.json script, not a file: keep the word as written.
    const looksLikePath = arg.includes("/") || /\.[A-Za-z0-9]+$/.test(arg);
    if (subcommandSeen && !looksLikePath) return done(arg);
    return file(arg);
  }
  return done(null);
}

/**
 * The script or entry point an interpreter runs, from its executable and argv: the first argument
 * that is not an option (nor an option's value), resolved against `cwd` to an absolute path when it
 * names a file. `python -m mod` gives `-m mod`; code on the command line (`node -e`, `--eval=…`,
 * `sh -c`, `python -c`, glued `python -cCODE`, `deno eval`) gives `[inline]`; a bare word after
 * `bun run` / `deno task` that is not a path (a package.json script name) is kept as written. Null
 * for programs that are not known interpreters and for interpreters with no script (a REPL, or code
 * read from stdin).
 */
export function entryPoint(executable: string | null, argv: readonly string[], cwd: string | null): string | null {
  return readCommand(executable, argv, cwd).script;
}

/**
 * Everything that loads other code into the program: its code-loading options (`readCommand`), then
 * the variables of its environment that do so for its interpreter and for the dynamic linker, as
 * `NAME=value`, sorted by name. Empty variables load nothing and are left out.
 */
export function codeLoads(
  executable: string | null,
  argv: readonly string[],
  env: ReadonlyMap<string, string>,
  options: readonly string[],
): string[] {
  const found = rulesFor(executable, argv);
  const ignoresEnv =
    found?.rules.ignoresEnv !== undefined &&
    argv
      .slice(1)
      .some(
        (a) =>
          /^-[a-zA-Z]+$/.test(a) && [...(found.rules.ignoresEnv ?? [])].some((f) => a.slice(1).includes(f.slice(1))),
      );
  const names = new Set(LINKER_ENV);
  if (found !== null && !ignoresEnv) for (const n of found.rules.env) names.add(n);
  const prefixes = found?.rules.envPrefixes ?? [];
  const vars = [...env.entries()]
    .filter(([k, v]) => v.length > 0 && (names.has(k) || prefixes.some((p) => k.startsWith(p))))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [...options, ...vars.map(([k, v]) => `${k}=${v}`)];
}

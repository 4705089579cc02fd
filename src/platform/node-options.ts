/**
 * Which of Node's own options would open its inspector (the debugger protocol, which lets any local
 * program that reaches its port evaluate code in the process and read every key it holds). Pure: the
 * caller passes `process.execArgv` and `NODE_OPTIONS`.
 */

/**
 * Splits `NODE_OPTIONS` the way Node does (`ParseNodeOptionsEnvVar` in src/node_options.cc): options
 * are separated by spaces (only the space character, not tabs); a double quote opens or closes a
 * quoted part anywhere in a word (`--title="a b"` is one option `--title=a b`); inside quotes a
 * backslash takes the next character literally. Node refuses to start on an unterminated quote or a
 * trailing backslash inside quotes; this returns what was read so far, which is what a check needs.
 */
export function parseNodeOptions(text: string): string[] {
  const args: string[] = [];
  let current: string | null = null;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    let c = text.charAt(i);
    if (c === "\\" && inString) {
      if (i + 1 === text.length) break;
      c = text.charAt(++i);
    } else if (c === " " && !inString) {
      if (current !== null) args.push(current);
      current = null;
      continue;
    } else if (c === '"') {
      inString = !inString;
      continue;
    }
    current = (current ?? "") + c;
  }
  if (current !== null) args.push(current);
  return args;
}

/**
 * The first option among `args` that enables or prepares Node's inspector: `--inspect`,
 * `--inspect-brk`, `--inspect-port`, `--inspect-wait` (with or without `=value`), any other
 * `--inspect…` or `--debug…` form (the old `--debug`, `--debug-brk`, `--debug-port`), in Node's
 * spelling with underscores too (Node reads `--inspect_brk` as `--inspect-brk`). Stops at `--`
 * (what follows is the script's). Returns the option as written, or null.
 */
export function inspectorOption(args: readonly string[]): string | null {
  for (const arg of args) {
    if (arg === "--") return null;
    const name = (arg.split("=", 1)[0] ?? "").replaceAll("_", "-");
    if (/^--(inspect|debug)(-|$)/.test(name)) return arg;
  }
  return null;
}

/** Options whose value names code Node loads before the main script. */
const CODE_LOADING = new Set(["--require", "-r", "--import", "--loader", "--experimental-loader"]);

/** Options that write the whole heap, every key in it, to a file. */
const HEAP_WRITING = new Set(["--heapsnapshot-signal", "--heapsnapshot-near-heap-limit"]);

/** The first option among `args` whose name is in `names` (`=value` and underscores as `inspectorOption`), or null; stops at `--`. */
function firstNamed(args: readonly string[], names: ReadonlySet<string>): string | null {
  for (const arg of args) {
    if (arg === "--") return null;
    const name = arg.startsWith("--") ? (arg.split("=", 1)[0] ?? "").replaceAll("_", "-") : arg;
    if (names.has(name)) return arg;
  }
  return null;
}

/**
 * The first option among `args` that loads other code into the process before its own:
 * `--require`/`-r`, `--import`, `--loader`, `--experimental-loader` (with a separate value or
 * `=value`, underscores read as dashes). `--experimental-vm-modules` and the like load nothing and
 * are not found. Returns the option as written (without its separate value), or null.
 */
export function codeLoadingOption(args: readonly string[]): string | null {
  return firstNamed(args, CODE_LOADING);
}

/**
 * The first option among `args` that makes Node write a heap snapshot (`--heapsnapshot-signal`,
 * which any program of the user can trigger with `kill`, and `--heapsnapshot-near-heap-limit`), or
 * null.
 */
export function heapWritingOption(args: readonly string[]): string | null {
  return firstNamed(args, HEAP_WRITING);
}

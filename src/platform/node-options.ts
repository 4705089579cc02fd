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

/**
 * Environment-variable fallback with pyper-sdk 0.7.1's rules, so an agent moved from Python finds
 * the same variables. The reference is `PiperClient.get_secret` / `_perform_get_secret` in
 * pyper-sdk 0.7.1 (piper_sdk/client.py):
 *
 *   name = variable_name.strip()                      # get_secret
 *   env_var = env_variable_map[name]                  # when the map has it, used as is
 *   else: n = name.upper(); n = re.sub(r'[^A-Z0-9_]', '_', n); n = re.sub(r'_+', '_', n)
 *         env_var = env_variable_prefix + n
 *   value = os.environ.get(env_var); found when `value is not None`
 *
 * So an empty value counts as set (pyper-sdk returns it), and an unset variable as absent.
 */

/**
 * The characters Python's `str.strip()` removes (those for which `str.isspace()` is true). It differs
 * from `String.prototype.trim`: Python also strips U+001C-U+001F and U+0085, and keeps U+FEFF.
 */
const PY_WHITESPACE =
  "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

/** `s.strip()` as Python 3 does it (see PY_WHITESPACE). */
export function pythonStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && PY_WHITESPACE.includes(s.charAt(start))) start += 1;
  while (end > start && PY_WHITESPACE.includes(s.charAt(end - 1))) end -= 1;
  return s.slice(start, end);
}

/**
 * The environment variable pyper-sdk 0.7.1 reads for `variable`: `variable` is stripped (Python
 * whitespace); an entry of `map` under the stripped name wins as is; otherwise the stripped name is
 * upper-cased, every code point outside A-Z 0-9 _ becomes `_`, runs of `_` collapse to one, and
 * `prefix` goes in front (unchanged). Example: `"  OpenAI-API-Key "` -> `OPENAI_API_KEY`.
 */
export function envNameFor(variable: string, prefix = "", map: Readonly<Record<string, string>> = {}): string {
  const name = pythonStrip(variable);
  if (Object.hasOwn(map, name)) {
    const mapped = map[name];
    if (mapped !== undefined) return mapped;
  }
  const base = name
    .toUpperCase()
    .replace(/[^A-Z0-9_]/gu, "_")
    .replace(/_+/g, "_");
  return `${prefix}${base}`;
}

/**
 * The fallback value of `name` in `env`, or null when it is not set. An empty string is a value:
 * pyper-sdk 0.7.1 tests `os.environ.get(name) is not None`, so `FOO=` yields `""` there too.
 */
export function envFallbackValue(env: Readonly<Record<string, string | undefined>>, name: string): string | null {
  if (!Object.hasOwn(env, name)) return null;
  return env[name] ?? null;
}

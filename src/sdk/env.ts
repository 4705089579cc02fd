/** Environment-variable fallback with pyper-sdk's naming rules. */

/**
 * The environment variable for `variable`: an explicit map entry first; otherwise upper-case, every
 * character outside [A-Z0-9_] becomes `_`, runs of `_` collapse, and the prefix goes in front.
 */
export function envNameFor(variable: string, prefix = "", map: Readonly<Record<string, string>> = {}): string {
  const mapped = map[variable];
  if (mapped !== undefined) return mapped;
  const base = variable
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, "_")
    .replace(/_+/g, "_");
  return `${prefix}${base}`;
}

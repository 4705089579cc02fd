/**
 * How CLI commands report: human lines by default, one JSON document with `--json`, and errors
 * with a stable code mapped to a documented exit code.
 */
import { LinkError, type ErrorCode } from "../../shared/errors.js";

/** Exit codes of `piper-link` (README.md). */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notRunning: 3,
  alreadyRunning: 4,
  keychain: 5,
} as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case "not_running":
      return ExitCode.notRunning;
    case "already_running":
      return ExitCode.alreadyRunning;
    case "keychain_locked":
    case "keychain_unavailable":
    case "locked":
      return ExitCode.keychain;
    case "bad_request":
    case "presence_required":
      return ExitCode.usage;
    default:
      return ExitCode.failure;
  }
}

export interface Output {
  json: boolean;
  /** Prints `human` lines, or `data` as JSON when --json was given. */
  result(data: unknown, human: string | string[]): void;
  /** A warning for the person, on stderr (also under --json, where stdout stays one JSON document). */
  warn(line: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(data, human) {
      if (json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
      else process.stdout.write(`${(Array.isArray(human) ? human : [human]).join("\n")}\n`);
    },
    warn(line) {
      process.stderr.write(`${line}\n`);
    },
  };
}

/** Reports an error (as `{error, message}` with --json) and returns the exit code to use. */
export function reportError(err: unknown, json: boolean): number {
  const linkError =
    err instanceof LinkError ? err : new LinkError("internal_error", err instanceof Error ? err.message : String(err));
  if (json) process.stdout.write(`${JSON.stringify({ error: linkError.code, message: linkError.message })}\n`);
  else process.stderr.write(`piper-link: ${linkError.message}\n`);
  return exitCodeFor(linkError.code);
}

/**
 * Structured logging to a file under the app's log directory. Fields that could carry a secret or a
 * credential are censored by pino's redaction, as a second line of defence: the code never logs
 * values in the first place.
 */
import fs from "node:fs";
import path from "node:path";
import { pino, type Logger } from "pino";

export const REDACTED_FIELDS = [
  "token",
  "value",
  "secret",
  "password",
  "refreshToken",
  "accessToken",
  "*.token",
  "*.value",
  "*.secret",
  "*.password",
  "*.refreshToken",
  "*.accessToken",
];

export interface FileLogger {
  log: Logger;
  /** Writes what is buffered; call before exit. */
  flush(): void;
}

export function createFileLogger(file: string, level = process.env["PIPER_LINK_LOG_LEVEL"] ?? "info"): FileLogger {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const destination = pino.destination({ dest: file, sync: true, mkdir: true });
  fs.chmodSync(file, 0o600);
  const log = pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACTED_FIELDS, censor: "[redacted]" } },
    destination,
  );
  return { log, flush: () => destination.flushSync() };
}

/** A logger that writes nowhere, for callers that do not want a log file. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

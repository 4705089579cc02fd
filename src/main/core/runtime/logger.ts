/**
 * Structured logging to files under the app's log directory, rotated by size (pino-roll: at most
 * `LOG_FILE_BYTES` per file and `LOG_FILES_KEPT` old files, so hostile input cannot fill the disk),
 * with `current.log` pointing at the file being written. Lines that repeat — the same message at the
 * same level, as one misbehaving peer causes — are limited to `REPEAT_LIMIT` per `REPEAT_WINDOW_MS`;
 * what was left out is summarised in one line when the window ends (issue 16 item 10). Fields that
 * could carry a secret or a credential are censored by pino's redaction, as a second line of
 * defence: the code never logs values in the first place.
 */
import fs from "node:fs";
import path from "node:path";
import { storageError } from "./files.js";
import { pino, type Logger } from "pino";
import roll from "pino-roll";

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

/** Size of one log file before the next one is started. */
export const LOG_FILE_BYTES = 5 * 1024 * 1024;
/** Old log files kept besides the current one. */
export const LOG_FILES_KEPT = 3;
/** How many lines with the same message and level may be written per window. */
export const REPEAT_LIMIT = 20;
export const REPEAT_WINDOW_MS = 10_000;

export interface FileLogger {
  log: Logger;
  /** Writes what is buffered; call before exit. */
  flush(): void;
}

/**
 * A limiter for repeated lines: `admit(key, now)` is true for the first `limit` lines of a key in a
 * window; `drain(now)` returns how many lines of each key were left out in windows that have ended.
 */
export function createRepeatLimiter(limit = REPEAT_LIMIT, windowMs = REPEAT_WINDOW_MS) {
  const windows = new Map<string, { start: number; count: number }>();
  return {
    admit(key: string, now: number): boolean {
      const w = windows.get(key);
      if (w === undefined || now - w.start >= windowMs) {
        windows.set(key, { start: now, count: 1 });
        return true;
      }
      w.count += 1;
      return w.count <= limit;
    },
    drain(now: number): Array<{ key: string; suppressed: number }> {
      const out: Array<{ key: string; suppressed: number }> = [];
      for (const [key, w] of windows) {
        if (now - w.start < windowMs) continue;
        if (w.count > limit) out.push({ key, suppressed: w.count - limit });
        windows.delete(key);
      }
      return out;
    },
  };
}

/**
 * Opens the rotating log in `logDir` (mode 0700) at `level`, a pino level (`LinkEnv.logLevel`). Lines repeated beyond the limit are
 * dropped and counted; the count is written when their window ends.
 */
export async function createFileLogger(logDir: string, level: string): Promise<FileLogger> {
  try {
    fs.mkdirSync(logDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw storageError(err, logDir) ?? err;
  }
  const stream = await roll({
    file: path.join(logDir, "link"),
    extension: ".log",
    size: `${LOG_FILE_BYTES / 1024}k`,
    limit: { count: LOG_FILES_KEPT },
    symlink: true,
    mkdir: true,
    sync: true,
  });
  const limiter = createRepeatLimiter();
  const log: Logger = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACTED_FIELDS, censor: "[redacted]" },
      hooks: {
        logMethod(args, method, levelValue) {
          const now = Date.now();
          for (const { key, suppressed } of limiter.drain(now)) {
            method.call(
              this,
              { repeated: suppressed },
              `${suppressed} more lines like "${key.slice(key.indexOf(" ") + 1)}" were left out`,
            );
          }
          const msg = args.find((a): a is string => typeof a === "string") ?? "";
          if (limiter.admit(`${levelValue} ${msg}`, now)) method.apply(this, args);
        },
      },
    },
    stream,
  );
  return { log, flush: () => stream.flushSync() };
}

/** A logger that writes nowhere, for callers that do not want a log file. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

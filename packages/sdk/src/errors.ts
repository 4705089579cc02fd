/**
 * The SDK's errors mirror pyper-sdk's classes, so people moving from Python recognise them:
 *
 *   PiperError
 *   ├─ PiperConfigError
 *   │  └─ PiperLinkNeededError        Link not running, not signed in
 *   ├─ PiperAuthError
 *   │  ├─ PiperGrantNeededError       no grant (yet): pending, not approved in time
 *   │  └─ PiperForbiddenError         the person denied it
 *   └─ PiperSecretAcquisitionError    every configured source failed (with the per-source summary)
 *
 * Every error has a stable `code` and a message that says what to do.
 */
import type { ErrorCode } from "../../../src/shared/errors.js";

/**
 * Codes only the SDK gives (the Link's own are `ErrorCode`, src/shared/errors.ts). Codes are API:
 * add new ones, never rename.
 */
export const SDK_ERROR_CODES = {
  /** No Link answered at the discovered address (not running, or the discovery file is stale). */
  link_not_running: "PiperLinkNeededError",
  /** The client ID given to the SDK is not one the protocol accepts. */
  invalid_client_id: "PiperConfigError",
  /** The variable name is empty or not one the protocol accepts. */
  invalid_variable: "PiperConfigError",
  /** Every source (the Link, the environment) was switched off. */
  no_sources: "PiperConfigError",
  /** Every configured source failed; the error lists what each said. */
  secret_unavailable: "PiperSecretAcquisitionError",
  /** The client was closed while the request was in flight. */
  closed: "PiperError",
  /** The caller's AbortSignal fired. */
  aborted: "PiperError",
} as const;
export type SdkErrorCode = keyof typeof SDK_ERROR_CODES;

/** Every code a `PiperError` may carry: the Link's (as it sent them) and the SDK's own. */
export type PiperErrorCode = ErrorCode | SdkErrorCode;

export class PiperError extends Error {
  readonly code: PiperErrorCode;
  readonly retryable: boolean;
  constructor(code: PiperErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PiperError";
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

export class PiperConfigError extends PiperError {
  constructor(code: PiperErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(code, message, options);
    this.name = "PiperConfigError";
  }
}

export class PiperLinkNeededError extends PiperConfigError {
  constructor(
    code: "link_not_running" | "not_logged_in" | "locked",
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(code, message, options);
    this.name = "PiperLinkNeededError";
  }
}

/**
 * Piper Link runs but is locked: the person has not unlocked it since it started, locked it, or it
 * locked itself (idle, too many wrong PINs). Nothing is served until they unlock; retry later.
 * A `PiperLinkNeededError`, so code that handles "the Link is not usable" handles this too.
 */
export class PiperLinkLockedError extends PiperLinkNeededError {
  constructor(message: string, options?: { cause?: unknown }) {
    // Retryable, as the Link's `locked` is (shared/errors.ts): once the person unlocks, the same call works.
    super("locked", message, { ...options, retryable: true });
    this.name = "PiperLinkLockedError";
  }
}

export class PiperAuthError extends PiperError {
  constructor(code: PiperErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(code, message, options);
    this.name = "PiperAuthError";
  }
}

export class PiperGrantNeededError extends PiperAuthError {
  readonly variable: string;
  readonly requestId: string | null;
  constructor(code: "grant_needed" | "timeout", variable: string, requestId: string | null, message: string) {
    super(code, message, { retryable: true });
    this.name = "PiperGrantNeededError";
    this.variable = variable;
    this.requestId = requestId;
  }
}

export class PiperForbiddenError extends PiperAuthError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super("denied", message);
    this.name = "PiperForbiddenError";
    this.variable = variable;
  }
}

export class PiperSecretAcquisitionError extends PiperError {
  readonly variable: string;
  /** What each source said: `piper` (an error) and `environment_variable` (the names looked at). */
  readonly attempts: Readonly<Record<string, string>>;
  constructor(variable: string, attempts: Record<string, string>, cause: unknown) {
    const lines = Object.entries(attempts).map(([source, what]) => `  - ${source}: ${what}`);
    // Retryable when the Link's failure was (rate limited, authority down): the environment will not change by itself.
    super("secret_unavailable", `Could not get ${variable} from any source:\n${lines.join("\n")}`, {
      cause,
      retryable: cause instanceof PiperError && cause.retryable,
    });
    this.name = "PiperSecretAcquisitionError";
    this.variable = variable;
    this.attempts = attempts;
  }
}

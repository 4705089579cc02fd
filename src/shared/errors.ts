/**
 * Stable error codes shared by the agent protocol, the control channel, the HTTP endpoints and the
 * CLI. Codes are API: add new ones, never rename. Each error crossing a boundary is a value with a
 * `code` and a sentence for humans.
 */
import { z } from "zod";

export const ERROR_CODES = [
  // agent protocol (DESIGN.md section 4)
  "denied",
  "timeout",
  "grant_needed",
  "not_logged_in",
  "authority_unavailable",
  "bad_request",
  "rate_limited",
  "unknown_type",
  "malformed_frame",
  "hello_required",
  "unsupported_protocol",
  "not_implemented",
  "requester_gone",
  // grant terms and calls made for agents (DESIGN.md section 8)
  "policy_violation",
  "destination_not_allowed",
  "upstream_unavailable",
  "response_too_large",
  // authority
  "secret_not_found",
  "conflict",
  // keychain
  "keychain_unavailable",
  "keychain_locked",
  // loopback surface
  "forbidden_origin",
  "forbidden_host",
  "not_found",
  "method_not_allowed",
  "too_many_connections",
  "foreign_user",
  "unauthorized",
  // presence and the locked vault (DESIGN.md section 9)
  "locked",
  "presence_required",
  "presence_failed",
  // lifecycle
  "already_running",
  "not_running",
  "internal_error",
  "service_failed",
  // Piper Link's own folders cannot be written (read-only, no permission, full): `storageError`
  "storage_unavailable",
] as const;

export const ErrorCodeSchema = z.enum(ERROR_CODES);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

/** Codes an agent may retry after a while without any change on its side. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "authority_unavailable",
  "rate_limited",
  "timeout",
  "keychain_locked",
  "keychain_unavailable",
  "upstream_unavailable",
  "locked",
]);

export function isRetryable(code: ErrorCode): boolean {
  return RETRYABLE.has(code);
}

/**
 * What an agent (and the Link's own calls) hear when nobody is signed in: the one sentence for
 * `not_logged_in`, used by the Link's agent channel, its resolver and authority client, and the SDK.
 */
export const NOT_SIGNED_IN_MESSAGE = "Piper Link is running but nobody is signed in. Open Piper Link and sign in.";

/** What an agent hears while the Link is locked (`locked`): the person must unlock it; the agent may retry later. */
export const LOCKED_MESSAGE =
  "Piper Link is locked. Ask the person to unlock it (its window, or `piper-link unlock` at a terminal), then try again.";

/** An error that carries a stable code; thrown inside the core, serialized at every edge. */
export class LinkError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LinkError";
    this.code = code;
    this.retryable = options?.retryable ?? isRetryable(code);
  }
}

/** The JSON body of every HTTP error the Link sends. */
export const HttpErrorBodySchema = z.object({
  error: ErrorCodeSchema,
  message: z.string(),
});
export type HttpErrorBody = z.infer<typeof HttpErrorBodySchema>;

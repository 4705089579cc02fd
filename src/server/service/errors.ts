/**
 * The authority's error value: an HTTP status plus the `{error, error_description}` pair that
 * pyper-sdk and the Link read. Its own module so that OAuth and the service parts can throw it
 * without loading each other.
 */
import type { AuthorityErrorCode } from "../../shared/authority-errors.js";

/**
 * An error with the HTTP status and the `{error, error_description}` body pyper-sdk reads; `code` is
 * one of the closed list in shared/authority-errors.ts.
 */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: AuthorityErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

/** The answer for an instance that is unknown, revoked (signed out) or another account's. */
export function invalidInstance(): ServiceError {
  return new ServiceError(
    401,
    "invalid_instance",
    "This instance ID is not valid for this account (unknown, or signed out). Sign in to Piper Link again.",
  );
}

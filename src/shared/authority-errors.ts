/**
 * Every `error` code the authority answers with (its `{error, error_description}` bodies), closed:
 * the authority's `ServiceError` takes only these, so a new code is added here first, with what it
 * means. Codes are API (the Link and pyper-sdk read them): add new ones, never rename. The OAuth
 * codes are RFC 6749 section 5.2's and RFC 8628 section 3.5's.
 */

export const AUTHORITY_ERRORS = {
  // requests and tokens
  invalid_request: "The request's body, query or parameters do not fit the route's schema.",
  request_too_large: "The request body is larger than the authority accepts.",
  invalid_token: "No valid Link token (Authorization: Bearer …).",
  invalid_instance: "The instance ID is unknown, signed out, or another account's.",
  instance_not_found: "No such instance for this account.",
  not_found: "No such endpoint.",
  foreign_user:
    "The connection comes from another user of this machine (the embedded authority serves only its own user).",
  rate_limited: "Too many requests or waits from this agent or source; retry later.",
  server_error: "The authority failed; nothing the client sent is at fault.",
  // secrets, requests and grants
  secret_not_found: "No secret of that name (404), or none yet to approve a request with (409).",
  mapping_not_found: "pyper-sdk's lookup: no secret is mapped to that variable for this agent.",
  request_not_found: "No such request.",
  request_not_pending: "The request was already decided or has expired.",
  requester_gone: "The program that asked has exited; nobody is left to give the secret to.",
  grant_not_found: "No such grant (or not this client's).",
  grant_ended: "The grant has ended; it can no longer change.",
  permission_denied: "The grant does not allow this, or the request was denied.",
  destination_not_allowed: "The grant or the secret's host list does not allow this destination.",
  policy_violation: "The grant's policy (hours, weekdays, uses, end date) refuses this use now.",
  // sign-in and presence
  account_exists: "An account with that email already exists.",
  invalid_credentials: "Wrong email or password.",
  invalid_csrf: "The form's CSRF token is missing or wrong; reload the page.",
  invalid_user_code: "The device code typed in is not one the authority issued.",
  too_many_attempts: "Too many failed sign-ins or codes; wait before trying again.",
  presence_required: "This change needs a proof of presence (the account password, or the Link's approval).",
  presence_failed: "The proof of presence was wrong.",
  // OAuth 2.0 (RFC 6749 section 5.2, RFC 8628 section 3.5)
  invalid_client: "Unknown OAuth client.",
  invalid_grant: "The authorization code, device code or refresh token is invalid, used or expired.",
  unsupported_grant_type: "The token endpoint does not support that grant type.",
  unsupported_response_type: "The authorize endpoint supports only `code`.",
  authorization_pending: "The person has not entered the device code yet; poll again.",
  slow_down: "Polled too often; wait the new interval.",
  access_denied: "The person refused the sign-in.",
  expired_token: "The device code expired; start again.",
} as const satisfies Record<string, string>;

export type AuthorityErrorCode = keyof typeof AUTHORITY_ERRORS;

/** The body of every authority error, as the authority writes it (clients read it as `AuthorityErrorSchema`). */
export interface AuthorityErrorBody {
  error: AuthorityErrorCode;
  error_description: string;
}

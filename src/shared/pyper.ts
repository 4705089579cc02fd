/**
 * pyper-sdk compatibility (DESIGN.md section 5): the three POST endpoints pyper-sdk 0.7 calls —
 * resolve mapping, scoped credentials, raw exchange — as one set of schemas, used by the Link's own
 * loopback HTTPS endpoints (src/main/core/pyper/) and the authority's optional ones (src/server),
 * plus the settings `piper-link pyper` prints for PiperClient. Shapes follow pyper-sdk 0.7's
 * `piper_sdk/client.py`: camelCase request bodies, snake_case answers, errors
 * `{error, error_description}` (it reads `error` to tell `mapping_not_found` from other 404s).
 */
import { z } from "zod";

/** The paths of the three endpoints (each is a separate URL in pyper-sdk's configuration). */
export const PYPER_PATHS = {
  resolveMapping: "/pyper/resolve-variable-mapping",
  scopedCredentials: "/pyper/get-scoped-credentials",
  exchangeSecret: "/pyper/exchange-secret",
} as const;

/** The Link's loopback HTTPS port for these endpoints when free (next to the Link's 31477 and the embedded authority's 31478). */
export const DEFAULT_PYPER_PORT = 31479;

export const PyperResolveSchema = z.object({
  agentClientId: z.string().min(1).max(128),
  instanceId: z.string().min(1).max(256),
  variableName: z.string().min(1).max(256),
});
export type PyperResolveBody = z.infer<typeof PyperResolveSchema>;

export const PyperScopedSchema = z.object({
  agentClientId: z.string().min(1).max(128),
  instanceId: z.string().min(1).max(256),
  credentialIds: z.array(z.string().min(1).max(128)).min(1).max(50),
});
export type PyperScopedBody = z.infer<typeof PyperScopedSchema>;

export const PyperExchangeSchema = z.object({
  agentClientId: z.string().min(1).max(128),
  instanceId: z.string().min(1).max(256),
  piperCredentialId: z.string().min(1).max(128),
});
export type PyperExchangeBody = z.infer<typeof PyperExchangeSchema>;

/** `200` answer of resolve mapping: the credential that serves the variable. */
export const PyperMappingResultSchema = z.object({ credentialId: z.string() });
export type PyperMappingResult = z.infer<typeof PyperMappingResultSchema>;

/** `200` answer of scoped credentials: a short-lived token bound to the granted credentials; `expires_in` in seconds. */
export const PyperScopedResultSchema = z.object({
  access_token: z.string(),
  granted_credential_ids: z.array(z.string()),
  expires_in: z.number().int(),
});
export type PyperScopedResult = z.infer<typeof PyperScopedResultSchema>;

/** `200` answer of raw exchange. */
export const PyperExchangeResultSchema = z.object({ secret_value: z.string() });
export type PyperExchangeResult = z.infer<typeof PyperExchangeResultSchema>;

/**
 * Error codes these endpoints answer, with the status pyper-sdk maps to its exceptions: 404
 * `mapping_not_found` -> PiperGrantNeededError (with the grant page link), 401 -> PiperAuthError,
 * 403 -> PiperForbiddenError, anything else -> PiperError.
 */
export const PyperErrorCodeSchema = z.enum([
  "invalid_request",
  "invalid_instance",
  "invalid_token",
  "mapping_not_found",
  "permission_denied",
  "foreign_user",
  "forbidden_host",
  "forbidden_origin",
  "not_found",
  "method_not_allowed",
  "payload_too_large",
  "rate_limited",
  "authority_unavailable",
]);
export type PyperErrorCode = z.infer<typeof PyperErrorCodeSchema>;

export const PyperErrorSchema = z.object({ error: PyperErrorCodeSchema, error_description: z.string() });
export type PyperError = z.infer<typeof PyperErrorSchema>;

/**
 * What PiperClient needs to reach a Link (printed by `piper-link pyper`): the three https URLs on
 * the Link's pyper port, the instance context URL and grant page on the Link's own port, and the
 * certificate file that must be trusted for `pyperOrigin` only.
 */
export const PyperSettingsSchema = z.object({
  resolveMappingUrl: z.string(),
  getScopedUrl: z.string(),
  exchangeSecretUrl: z.string(),
  linkServiceUrl: z.string(),
  grantPageUrl: z.string(),
  /** `https://127.0.0.1:PORT/`: the only prefix the certificate is trusted for. */
  pyperOrigin: z.string(),
  certFile: z.string(),
});
export type PyperSettings = z.infer<typeof PyperSettingsSchema>;

/** The settings for a Link whose loopback server is on `linkPort` and pyper endpoints on `pyperPort`. */
export function pyperSettings(linkPort: number, pyperPort: number, certFile: string): PyperSettings {
  const origin = `https://127.0.0.1:${pyperPort}`;
  return {
    resolveMappingUrl: `${origin}${PYPER_PATHS.resolveMapping}`,
    getScopedUrl: `${origin}${PYPER_PATHS.scopedCredentials}`,
    exchangeSecretUrl: `${origin}${PYPER_PATHS.exchangeSecret}`,
    // pyper-sdk warns about a Link service URL that does not start with http://localhost.
    linkServiceUrl: `http://localhost:${linkPort}/piper-link-context`,
    grantPageUrl: `http://127.0.0.1:${linkPort}/grant`,
    pyperOrigin: `${origin}/`,
    certFile,
  };
}

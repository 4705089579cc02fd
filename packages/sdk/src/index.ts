/**
 * @piper-link/sdk — get a person's secrets through Piper Link, with their approval.
 *
 *   const piper = createPiperClient({ clientId: "my-agent", name: "My Agent" });
 *   const { value } = await piper.getSecret("OPENAI_API_KEY", { reason: "summarise your inbox" });
 *   // several at once, one approval card, partial results
 *   const keys = await piper.getSecrets(["OPENAI_API_KEY", "GITHUB_TOKEN"]);
 *   // or use it without reading it: the Link makes the call and injects the key
 *   const res = await piper.fetch("https://api.openai.com/v1/models", { auth: { bearer: "OPENAI_API_KEY" } });
 */
export {
  createPiperClient,
  type AccessState,
  type RequestAccessInit,
  type GetSecretOptions,
  type GetSecretsOptions,
  type SecretsEntry,
  type PiperFetchInit,
  type PiperClient,
  type PiperClientOptions,
  type PiperLogger,
  type SecretResult,
} from "./client.js";
export type { ActingFor, AgentGrant } from "../../../src/shared/protocol.js";
export { DEFAULT_LINK_URL, discoverLinkUrl } from "./discovery.js";
export { envNameFor } from "./env.js";
export {
  PiperAuthError,
  PiperConfigError,
  PiperError,
  PiperForbiddenError,
  PiperGrantNeededError,
  PiperLinkLockedError,
  PiperLinkNeededError,
  PiperSecretAcquisitionError,
  SDK_ERROR_CODES,
  type PiperErrorCode,
  type SdkErrorCode,
} from "./errors.js";
export type { ErrorCode } from "../../../src/shared/errors.js";

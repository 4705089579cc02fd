/**
 * Passkeys (WebAuthn) as a proof of presence: what the Link keeps of each registered passkey (sealed
 * in the vault as JSON) and the shapes of the browser's answers to `navigator.credentials.create` /
 * `get` as `PublicKeyCredential.toJSON()` gives them (WebAuthn Level 3, section 5.1.8
 * "Serialization"; the same JSON @simplewebauthn/browser produces). Pure: no I/O.
 *
 * The relying party is `localhost`: Chromium refuses an IP address such as 127.0.0.1 as an RP ID
 * (WebAuthn L2 section 5.1.3 step 8: the RP ID must be a registrable domain suffix of the origin's
 * effective domain, and an IP address has none), so the passkey step runs on the Link's page at
 * `http://localhost:<port>`, which browsers treat as a secure context.
 */
import { z } from "zod";

/** The WebAuthn relying party ID of every Link (see the module comment for why not 127.0.0.1). */
export const PASSKEY_RP_ID = "localhost";

/** How long a passkey challenge (registration or proof) may be answered, in ms: 2 minutes. */
export const PASSKEY_CHALLENGE_TTL_MS = 2 * 60_000;

/** The most passkeys one Link keeps (a person has a few authenticators, not dozens). */
export const PASSKEYS_MAX = 20;

const Base64Url = z.string().regex(/^[A-Za-z0-9_-]*$/, "base64url without padding");

/**
 * One registered passkey, as the Link keeps it (sealed in the vault):
 * - `id`: the credential ID, base64url (what the browser's answer names in `id`).
 * - `publicKey`: the credential's COSE public key, base64url.
 * - `counter`: the authenticator's signature counter at the last good proof (0 for authenticators
 *   that do not count; WebAuthn L2 section 6.1.1: a counter that does not grow means a clone).
 * - `transports`: how the browser reached the authenticator (`internal`, `usb`, `hybrid`, …), offered
 *   back in `allowCredentials` so the browser asks the right one.
 * - `name`: what the person called it ("Laptop fingerprint"); `createdAt`: ISO 8601.
 */
export const StoredPasskeySchema = z
  .object({
    id: Base64Url.min(16).max(1400),
    publicKey: Base64Url.min(16).max(4000),
    counter: z.number().int().nonnegative(),
    transports: z.array(z.string().regex(/^[a-z-]{1,32}$/)).max(10),
    name: z.string().min(1).max(100),
    createdAt: z.iso.datetime(),
  })
  .strict();
export type StoredPasskey = z.infer<typeof StoredPasskeySchema>;

/** Every passkey of one Link, the JSON the vault seals. */
export const StoredPasskeysSchema = z.array(StoredPasskeySchema).max(PASSKEYS_MAX);

/** `clientExtensionResults`: the Link asks for no extension, so it keeps none of what comes back. */
const ClientExtensionResults = z.record(z.string(), z.unknown()).transform(() => ({}));

/** What every `PublicKeyCredential.toJSON()` carries around its `response` (WebAuthn L3 section 5.1). */
const CredentialEnvelope = z.object({
  id: Base64Url.min(1).max(1400),
  rawId: Base64Url.min(1).max(1400),
  type: z.literal("public-key"),
  authenticatorAttachment: z.enum(["platform", "cross-platform"]).exactOptional(),
  clientExtensionResults: ClientExtensionResults,
});

/**
 * The browser's answer to `navigator.credentials.create` (`RegistrationResponseJSON`, WebAuthn L3
 * section 5.1.8). Optional members are exact (absent, never `undefined`) so the parsed value is what
 * @simplewebauthn/server's `verifyRegistrationResponse` takes.
 */
export const PasskeyRegistrationResponseSchema = CredentialEnvelope.extend({
  response: z.object({
    clientDataJSON: Base64Url.min(1).max(20_000),
    attestationObject: Base64Url.min(1).max(100_000),
    authenticatorData: Base64Url.max(100_000).exactOptional(),
    transports: z.array(z.string().max(32)).max(10).exactOptional(),
    publicKeyAlgorithm: z.number().int().exactOptional(),
    publicKey: Base64Url.max(10_000).exactOptional(),
  }),
});
export type PasskeyRegistrationResponse = z.infer<typeof PasskeyRegistrationResponseSchema>;

/**
 * The browser's answer to `navigator.credentials.get` (`AuthenticationResponseJSON`, WebAuthn L3
 * section 5.1.8): what a `passkey` proof of presence carries in `response`.
 */
export const PasskeyAssertionResponseSchema = CredentialEnvelope.extend({
  response: z.object({
    clientDataJSON: Base64Url.min(1).max(20_000),
    authenticatorData: Base64Url.min(1).max(100_000),
    signature: Base64Url.min(1).max(10_000),
    userHandle: Base64Url.max(1000).exactOptional(),
  }),
});
export type PasskeyAssertionResponse = z.infer<typeof PasskeyAssertionResponseSchema>;

/** The exact origin of the Link's page where passkeys are registered and used: `http://localhost:<port>`. */
export function passkeyOrigin(port: number): string {
  return `http://${PASSKEY_RP_ID}:${port}`;
}

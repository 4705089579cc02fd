/**
 * Calls made for agents (DESIGN.md section 8, issue 14): the agent names secrets and how to inject
 * them, the Link performs the HTTPS request and streams the answer back with every echo of an
 * injected value redacted. This module holds the wire shapes of the `call` message and its reply
 * frames (`call.head`, `call.chunk`, `call.end`), the audit detail of a call, and the limits; the
 * agent protocol (protocol.ts) puts them in its unions. The value never appears in any of them.
 */
import { z } from "zod";

/** What the Link writes in place of every echo of an injected value. */
export const REDACTION_MARK = "[REDACTED by Piper Link]";

/** A secret named the way agents name variables for `resolve`. */
const SecretRef = z.string().min(1).max(256);
/** Header names as RFC 9110 tokens. */
const HeaderName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "a header name (RFC 9110 token)");
/** A header value: no CR, LF or NUL, so nothing can be smuggled into the request head. */
const HeaderValue = z
  .string()
  .max(8192)
  .regex(/^[^\r\n\0]*$/, "header values may not contain CR, LF or NUL");

/**
 * Segments a `jsonField` path may not name: they reach an object's prototype, not a field of the
 * body (`__proto__.x` would set `x` on every object of the process that builds the body).
 */
export const FORBIDDEN_PATH_SEGMENTS: readonly string[] = ["__proto__", "prototype", "constructor"];

/** A `jsonField` key: a dot path into the JSON body (prototype segments are refused on the record, to name the rule). */
const JsonFieldPath = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^.]+(\.[^.]+)*$/, "a dot path such as auth.token");

/**
 * How each named secret enters the request; several styles combine. `basic` expects the secret to
 * be stored as `user:password`. `jsonField` keys are dot paths into a JSON object body
 * (`auth.token`); `formField` keys are fields of an `application/x-www-form-urlencoded` body.
 */
export const CallAuthSchema = z
  .object({
    bearer: SecretRef.optional(),
    basic: SecretRef.optional(),
    header: z.record(HeaderName, SecretRef).optional(),
    query: z.record(z.string().min(1).max(256), SecretRef).optional(),
    jsonField: z
      .record(JsonFieldPath, SecretRef)
      .refine(
        (r) => Object.keys(r).every((p) => !p.split(".").some((s) => FORBIDDEN_PATH_SEGMENTS.includes(s))),
        "a jsonField path may not name __proto__, prototype or constructor",
      )
      .optional(),
    formField: z.record(z.string().min(1).max(256), SecretRef).optional(),
  })
  .strict();
export type CallAuth = z.infer<typeof CallAuthSchema>;

/** A request body: text (sent as UTF-8) or bytes in base64. */
export const CallBodySchema = z.union([
  z.object({ text: z.string() }).strict(),
  z.object({ base64: z.base64() }).strict(),
]);
export type CallBody = z.infer<typeof CallBodySchema>;

export const CallMethodSchema = z.string().regex(/^[A-Z]{1,16}$/, "an upper-case HTTP method such as GET or POST");

/**
 * `call`: the agent asks the Link to make a request carrying secrets it never sees. The whole
 * message fits one frame (64 KiB), which bounds the request body (CALL_LIMITS.requestBodyBytes).
 */
export const CallSchema = z.object({
  type: z.literal("call"),
  id: z.union([z.string().min(1).max(128), z.number().int()]),
  method: CallMethodSchema.default("GET"),
  url: z.string().min(1).max(8192),
  headers: z.record(HeaderName, HeaderValue).optional(),
  body: CallBodySchema.optional(),
  auth: CallAuthSchema,
  /** Shown to the person with the exact method and URL when a secret needs approval. */
  reason: z.string().max(500).optional(),
  /** Wait for the person when a secret has no grant (default true); false answers `grant_needed`. */
  wait: z.boolean().default(true),
  /**
   * When a grant exists but does not allow this method and URL (its destinations), ask the person:
   * a new request naming the exact method and URL, answered like any other.
   * Default false: such a call fails at once with `destination_not_allowed`. A secret's own host
   * list is never widened this way.
   */
  askIfRefused: z.boolean().optional(),
  /** How long the person may take to approve, in ms (default `AGENT_DEFAULTS.approvalWaitMs`, 120 s). */
  approvalTimeoutMs: z
    .number()
    .int()
    .min(0)
    .max(24 * 3600_000)
    .optional(),
  /** The whole upstream exchange, from sending to the last byte, in ms (default and ceiling: CALL_LIMITS.totalMs). */
  timeoutMs: z.number().int().min(1).max(3600_000).optional(),
});
export type Call = z.infer<typeof CallSchema>;

/** `cancel`: stops a running call (its upstream request is aborted); no further frame answers it. */
export const CancelSchema = z.object({
  type: z.literal("cancel"),
  id: z.union([z.string().min(1).max(128), z.number().int()]),
});
export type Cancel = z.infer<typeof CancelSchema>;

/** The answer's status and headers (pairs, in order, repeated names kept), already redacted. */
export const CallHeadSchema = z.object({
  type: z.literal("call.head"),
  id: z.union([z.string(), z.number()]),
  status: z.number().int(),
  statusText: z.string(),
  headers: z.array(z.tuple([z.string(), z.string()])),
  /** True when an injected value was found in the headers (so far; the end frame has the final word). */
  redacted: z.boolean(),
  /** The URL that answered (after same-origin redirects), without its query string. */
  url: z.string(),
});
export type CallHead = z.infer<typeof CallHeadSchema>;

/** A piece of the answer's body as it arrived (after redaction), in base64. */
export const CallChunkSchema = z.object({
  type: z.literal("call.chunk"),
  id: z.union([z.string(), z.number()]),
  data: z.base64(),
});
export type CallChunk = z.infer<typeof CallChunkSchema>;

/** The answer is complete: body bytes delivered, whether anything was redacted, and how long it took. */
export const CallEndSchema = z.object({
  type: z.literal("call.end"),
  id: z.union([z.string(), z.number()]),
  bytes: z.number().int().min(0),
  redacted: z.boolean(),
  durationMs: z.number().min(0),
});
export type CallEnd = z.infer<typeof CallEndSchema>;

/**
 * What the audit log keeps of one call (DESIGN.md section 8): never a value, a request body or a
 * query value. `path` is the URL path only; `queryKeys` the names of its query parameters.
 */
export const CallAuditSchema = z.object({
  secretNames: z.array(z.string().max(256)).max(32),
  method: z.string().max(16),
  host: z.string().max(300),
  path: z.string().max(2048),
  status: z.number().int().nullable(),
  bytes: z.number().int().min(0),
  durationMs: z.number().min(0),
  redacted: z.boolean(),
  /** The stable code when the call failed (`upstream_unavailable`, `destination_not_allowed`…). */
  error: z.string().max(64).nullable(),
  /** The verified program (executable and script) that asked. */
  program: z.string().max(1024).nullable(),
});
export type CallAudit = z.infer<typeof CallAuditSchema>;

/**
 * Default limits of a call. Request bodies are bounded by the frame size (64 KiB with the rest of
 * the message); answers are streamed, so the response limit guards the agent's memory, not ours.
 */
export const CALL_LIMITS = {
  /** Largest request body, in bytes. */
  requestBodyBytes: 48 * 1024,
  /** Largest response body, in bytes; beyond it the call ends with `response_too_large`. */
  responseBytes: 32 * 1024 * 1024,
  /** Time from sending to the upstream's status line and headers, in ms. */
  headersMs: 30_000,
  /** Time for the whole exchange, in ms (long enough for an LLM token stream). */
  totalMs: 300_000,
  /** Same-origin redirects followed at most. */
  redirects: 5,
  /** Largest `call.chunk` payload, in bytes before base64. */
  chunkBytes: 32 * 1024,
} as const;
export type CallLimits = { [K in keyof typeof CALL_LIMITS]: number };

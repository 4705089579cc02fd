/**
 * The authority's HTTP routes as one table (DESIGN.md section 5), built like `ControlMethods`: per
 * route its method, path, whether it needs the Link's bearer credential, how the body travels (JSON or
 * an OAuth form), and zod schemas for path params, query, body and result. The server registers its
 * Fastify routes from this table (fastify-type-provider-zod validates the input) and the Link's one
 * generic client (`core/authority/authority-client.ts`) builds every call from it and validates every
 * answer with it, so neither side assembles a path, a query or a body by hand.
 */
import { z } from "zod";
import {
  AgentResolveBodySchema,
  AgentResolveResultSchema,
  AgentWaitBodySchema,
  AgentWaitResultSchema,
  ApproveBodySchema,
  AuditPageSchema,
  DeviceAuthorizationSchema,
  GrantViewSchema,
  InstanceCreatedSchema,
  RequestViewSchema,
  SecretHostsSchema,
  SecretNameSchema,
  SecretValueSchema,
  SecretViewSchema,
  TokenResponseSchema,
  UsageReportSchema,
} from "./authority.js";
import { GrantPolicySchema } from "./grant-terms.js";
import { AuthorityPresenceSchema } from "./presence.js";

/**
 * The proof of presence a widening route takes (`authority-presence.ts` names what it covers).
 * Optional in the schema so that a call without one gets 403 `presence_required` with a sentence,
 * not a validation error.
 */
const Presence = AuthorityPresenceSchema.optional();

/**
 * A whole number carried in a query string: the client may give a number, the wire has a string, and
 * both sides end with a number between `min` and `max`.
 */
function queryInt(min: number, max: number) {
  return z
    .union([
      z.number().int(),
      z
        .string()
        .regex(/^\d{1,9}$/, "must be a whole number")
        .transform(Number),
    ])
    .pipe(z.number().int().min(min).max(max));
}

/** A boolean carried in a query string as `true` / `false`. */
const QueryBool = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);

const Empty = z.object({}).strict();

/** The result of routes that answer 204 or `{}`: whatever came, the caller gets `undefined`. */
export const NoContent = z.unknown().transform(() => undefined);
const IdParams = z.object({ id: z.string().min(1).max(128) });
const NameParams = z.object({ name: SecretNameSchema });

/** OAuth token requests (RFC 6749 sections 4.1.3 and 6, RFC 8628 section 3.4), sent as a form. */
export const TokenRequestSchema = z.discriminatedUnion("grant_type", [
  z.object({
    grant_type: z.literal("authorization_code"),
    client_id: z.string(),
    code: z.string(),
    redirect_uri: z.string(),
    code_verifier: z.string(),
  }),
  z.object({ grant_type: z.literal("refresh_token"), client_id: z.string(), refresh_token: z.string() }),
  z.object({
    grant_type: z.literal("urn:ietf:params:oauth:grant-type:device_code"),
    client_id: z.string(),
    device_code: z.string(),
  }),
]);
export type TokenRequest = z.infer<typeof TokenRequestSchema>;

/** One route of the table. `auth: "bearer"` routes need the Link's credential (an access token or a Link token). */
export interface AuthorityRoute {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Fastify-style path; `:name` segments are filled from `params`. */
  readonly path: string;
  readonly auth: "bearer" | "none";
  /** `form`: application/x-www-form-urlencoded (the OAuth endpoints); otherwise JSON. */
  readonly encoding: "json" | "form";
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** The answer; `NoContent` for routes whose answer has no body the caller needs (204, or `{}`). */
  readonly result: z.ZodType;
  /** Long-polls travel on their own connection pool (issue 16 item 5). */
  readonly longPoll?: true;
}

function route<const R extends AuthorityRoute>(r: R): R {
  return r;
}

/** Why the Link ends a grant: the person revoked it, its process exited, or its terminal session ended. */
export const GrantEndReasonSchema = z.enum(["revoked", "process_exited", "session_ended"]);
export type GrantEndReason = z.infer<typeof GrantEndReasonSchema>;

/** `GET /v1/me`'s query: the instance whose name the caller wants (optional). */
export const MeQuerySchema = z.object({ instanceId: z.string().min(1).max(128).optional() }).strict();
/** `GET /v1/me`'s answer (issue 15 item 7). */
export const MeSchema = z.object({
  userId: z.string(),
  /** The account's display name. */
  name: z.string().optional(),
  /** The account's email; null for a token-only local user. */
  email: z.string().nullable().optional(),
  /** The named instance when it is the caller's and not revoked, else null. */
  instance: z.object({ id: z.string(), name: z.string() }).nullable().optional(),
});
export type Me = z.infer<typeof MeSchema>;

/** What revoking an instance did: when (epoch ms; revoking again keeps the first time) and how many live grants it ended. */
export const InstanceRevokedSchema = z.object({
  instanceId: z.string(),
  revokedAt: z.number(),
  grantsEnded: z.number().int(),
});
export type InstanceRevoked = z.infer<typeof InstanceRevokedSchema>;

export const AuthorityRoutes = {
  health: route({
    method: "GET",
    path: "/healthz",
    auth: "none",
    encoding: "json",
    result: z.object({ status: z.literal("ok"), version: z.string() }),
  }),
  /**
   * Who the bearer is (issue 15 item 7): the account's display name and email (null for a
   * token-only local user) and, with `?instanceId=`, that instance's name when it is the caller's
   * and live (else null). Authorities that predate these fields answer only `userId`.
   */
  me: route({
    method: "GET",
    path: "/v1/me",
    auth: "bearer",
    encoding: "json",
    query: MeQuerySchema,
    result: MeSchema,
  }),
  registerInstance: route({
    method: "POST",
    path: "/v1/instances",
    auth: "bearer",
    encoding: "json",
    body: z.object({ name: z.string().min(1).max(200) }).strict(),
    result: InstanceCreatedSchema,
  }),
  getInstance: route({
    method: "GET",
    path: "/v1/instances/:id",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    result: InstanceCreatedSchema,
  }),
  /** Sign-out (issue 13 item 8): the instance is invalid everywhere from now on; its live grants end. */
  revokeInstance: route({
    method: "POST",
    path: "/v1/instances/:id/revoke",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: Empty,
    result: InstanceRevokedSchema,
  }),
  listRequests: route({
    method: "GET",
    path: "/v1/requests",
    auth: "bearer",
    encoding: "json",
    query: z.object({ status: z.enum(["pending", "approved", "denied", "expired", "all"]).default("pending") }),
    result: z.array(RequestViewSchema),
  }),
  /** A yes: needs `presence` over `authorityPresenceAction("approveRequest", …)` (403 `presence_required` / `presence_failed`). */
  approveRequest: route({
    method: "POST",
    path: "/v1/requests/:id/approve",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: ApproveBodySchema.extend({ presence: Presence }).strict(),
    result: GrantViewSchema,
  }),
  denyRequest: route({
    method: "POST",
    path: "/v1/requests/:id/deny",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: Empty,
    result: RequestViewSchema,
  }),
  /** The Link saw the requesting process exit: the request ends as `requester_gone` (issue 13 item 4). */
  requesterGone: route({
    method: "POST",
    path: "/v1/requests/:id/requester-gone",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: Empty,
    result: RequestViewSchema,
  }),
  listGrants: route({
    method: "GET",
    path: "/v1/grants",
    auth: "bearer",
    encoding: "json",
    query: z.object({ all: QueryBool.default(false) }),
    result: z.array(GrantViewSchema),
  }),
  revokeGrant: route({
    method: "POST",
    path: "/v1/grants/:id/revoke",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: z.object({ reason: GrantEndReasonSchema.default("revoked") }).strict(),
    result: GrantViewSchema,
  }),
  /** Replaces a grant's policy limits (issue 14 item 4); `null` removes them. Audited as `grant.policy_changed`. Needs `presence`. */
  updateGrantPolicy: route({
    method: "PUT",
    path: "/v1/grants/:id/policy",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: z.object({ policy: GrantPolicySchema.nullable(), presence: Presence }).strict(),
    result: GrantViewSchema,
  }),
  /**
   * Live grants approved before proofs of presence existed (after an upgrade), those bound to any
   * program of the client ID (`binding: client`) first, then the newest.
   */
  listLegacyGrants: route({
    method: "GET",
    path: "/v1/grants/legacy",
    auth: "bearer",
    encoding: "json",
    result: z.array(GrantViewSchema),
  }),
  /** Keeps the listed legacy grants (no longer legacy); ids that are not live legacy grants of the caller are skipped. Needs `presence`. */
  keepLegacyGrants: route({
    method: "POST",
    path: "/v1/grants/legacy/keep",
    auth: "bearer",
    encoding: "json",
    body: z.object({ grantIds: z.array(z.string().min(1).max(128)).min(1).max(500), presence: Presence }).strict(),
    result: z.object({ kept: z.number().int() }),
  }),
  listSecrets: route({
    method: "GET",
    path: "/v1/secrets",
    auth: "bearer",
    encoding: "json",
    result: z.array(SecretViewSchema),
  }),
  /** Creates or replaces a secret; with `hosts` it needs `presence` too (it says where the value may go). */
  setSecret: route({
    method: "PUT",
    path: "/v1/secrets/:name",
    auth: "bearer",
    encoding: "json",
    params: NameParams,
    body: z
      .object({ value: SecretValueSchema, hosts: SecretHostsSchema.nullable().optional(), presence: Presence })
      .strict(),
    result: SecretViewSchema,
  }),
  /** The hosts a secret may ever be sent to (issue 14 item 3); `null`: any. 404 `secret_not_found`. Needs `presence`. */
  setSecretHosts: route({
    method: "PUT",
    path: "/v1/secrets/:name/hosts",
    auth: "bearer",
    encoding: "json",
    params: NameParams,
    body: z.object({ hosts: SecretHostsSchema.nullable(), presence: Presence }).strict(),
    result: SecretViewSchema,
  }),
  deleteSecret: route({
    method: "DELETE",
    path: "/v1/secrets/:name",
    auth: "bearer",
    encoding: "json",
    params: NameParams,
    result: NoContent,
  }),
  recordUsage: route({
    method: "POST",
    path: "/v1/usage",
    auth: "bearer",
    encoding: "json",
    body: UsageReportSchema,
    result: z.object({ recorded: z.number().int() }),
  }),
  audit: route({
    method: "GET",
    path: "/v1/audit",
    auth: "bearer",
    encoding: "json",
    query: z.object({
      limit: queryInt(1, 500).default(50),
      before: z.string().max(64).optional(),
      agent: z.string().max(128).optional(),
      variable: z.string().max(256).optional(),
      /** A secret's name, exact. */
      secret: z.string().max(256).optional(),
      /** Only calls the Link made to this host (`host` or `host:port`). */
      host: z.string().max(300).optional(),
    }),
    result: AuditPageSchema,
  }),
  /** Agent API: the Link asks on an agent's behalf; the instance must belong to the bearer's account (issue 13 item 3). */
  agentResolve: route({
    method: "POST",
    path: "/v1/agent/resolve",
    auth: "bearer",
    encoding: "json",
    body: AgentResolveBodySchema,
    result: AgentResolveResultSchema,
  }),
  agentWait: route({
    method: "POST",
    path: "/v1/agent/requests/:id/wait",
    auth: "bearer",
    encoding: "json",
    params: IdParams,
    body: AgentWaitBodySchema,
    result: AgentWaitResultSchema,
    longPoll: true,
  }),
  /** OAuth endpoints: form bodies, no bearer; errors are RFC 6749 section 5.2 bodies. */
  oauthToken: route({
    method: "POST",
    path: "/oauth/token",
    auth: "none",
    encoding: "form",
    body: TokenRequestSchema,
    result: TokenResponseSchema,
  }),
  deviceAuthorization: route({
    method: "POST",
    path: "/oauth/device_authorization",
    auth: "none",
    encoding: "form",
    body: z.object({ client_id: z.string() }),
    result: DeviceAuthorizationSchema,
  }),
  revokeToken: route({
    method: "POST",
    path: "/oauth/revoke",
    auth: "none",
    encoding: "form",
    body: z.object({ token: z.string() }),
    result: NoContent,
  }),
} as const;

export type AuthorityRouteName = keyof typeof AuthorityRoutes;

type Part<R, K extends "params" | "query" | "body"> = R extends { readonly [P in K]: infer S extends z.ZodType }
  ? { [P in K]: z.input<S> }
  : { [P in K]?: never };

/** What a caller gives for route `N`: the params, query and body its schemas take (inputs, before defaults). */
export type AuthorityCallInput<N extends AuthorityRouteName> = Part<(typeof AuthorityRoutes)[N], "params"> &
  Part<(typeof AuthorityRoutes)[N], "query"> &
  Part<(typeof AuthorityRoutes)[N], "body">;

/** What route `N` answers, after validation; `undefined` for `NoContent` routes. */
export type AuthorityResult<N extends AuthorityRouteName> = z.output<(typeof AuthorityRoutes)[N]["result"]>;

/**
 * Fills a route's `:name` path segments from `params` (each URI-encoded).
 * Throws a TypeError when a segment has no value: a programming error, never input.
 */
export function fillPath(path: string, params: Record<string, unknown> | undefined): string {
  return path.replace(/:([A-Za-z_]+)/g, (_m, key: string) => {
    const value = params?.[key];
    if (typeof value !== "string" && typeof value !== "number")
      throw new TypeError(`The path ${path} needs a value for :${key}.`);
    return encodeURIComponent(String(value));
  });
}

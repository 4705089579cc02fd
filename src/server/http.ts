/**
 * The authority's HTTP API on Fastify: the Link API (bearer Link token), the Agent API (instance
 * ID + agent client ID), the pyper-sdk compatibility endpoints, and an event stream (SSE). Every
 * body is validated by the shared zod schemas; every error is `{error, error_description}` with the
 * status pyper-sdk maps to its exceptions.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { z, type ZodType } from "zod";
import {
  AgentResolveBodySchema,
  AgentWaitBodySchema,
  ApproveBodySchema,
  PyperExchangeSchema,
  PyperResolveSchema,
  PyperScopedSchema,
  SecretNameSchema,
  UsageReportSchema,
} from "../shared/authority.js";
import { LINK_VERSION } from "../shared/version.js";
import type { EventBus } from "./events.js";
import type { OAuthService } from "./oauth.js";
import { registerOAuthRoutes } from "./oauth-routes.js";
import { ServiceError, type AuthorityService } from "./service.js";

export interface AuthorityHttpOptions {
  service: AuthorityService;
  oauth: OAuthService;
  bus: EventBus;
  https: { key: string; cert: string } | null;
  /** Paths of the pyper-sdk endpoints (each is a separate URL in pyper-sdk's configuration). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export const PYPER_PATHS = {
  resolveMapping: "/pyper/resolve-variable-mapping",
  scopedCredentials: "/pyper/get-scoped-credentials",
  exchangeSecret: "/pyper/exchange-secret",
} as const;

function parse<T>(schema: ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const detail = r.error.issues
      .slice(0, 3)
      .map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
      .join("; ");
    throw new ServiceError(400, "invalid_request", detail);
  }
  return r.data;
}

const IdParams = z.object({ id: z.string().min(1).max(128) });
const NameParams = z.object({ name: SecretNameSchema });
const SecretBody = z.object({ value: z.string().min(1).max(32 * 1024) }).strict();
const RevokeBody = z.object({ reason: z.enum(["revoked", "process_exited"]).default("revoked") }).strict();
const InstanceBody = z.object({ name: z.string().min(1).max(200) }).strict();
const AuditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().max(64).optional(),
  agent: z.string().max(128).optional(),
  variable: z.string().max(256).optional(),
  /** A secret's name, exact. */
  secret: z.string().max(256).optional(),
  /** Calls to this host (`host` or `host:port`). */
  host: z.string().max(300).optional(),
});
const RequestsQuery = z.object({ status: z.enum(["pending", "approved", "denied", "expired", "all"]).default("pending") });
const GrantsQuery = z.object({ all: z.enum(["true", "false"]).default("false") });

/** Endpoints where a caller names an instance, client, credential or device code it might be guessing. */
function isGuarded(url: string): boolean {
  return url.startsWith("/v1/agent/") || url.startsWith("/pyper/") || url.startsWith("/oauth/token");
}

export function buildAuthorityApp(options: AuthorityHttpOptions): FastifyInstance {
  const { service, bus } = options;
  // The HTTPS and HTTP instances differ only in their server type; routes are written once.
  const app: FastifyInstance = options.https
    ? (Fastify({ https: options.https, bodyLimit: 64 * 1024, logger: false, return503OnClosing: true }))
    : Fastify({ bodyLimit: 64 * 1024, logger: false, return503OnClosing: true });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ServiceError) {
      // Issue 16 item 16: failed guesses on the agent and token endpoints count against the source address.
      if (isGuarded(req.url)) service.limits.recordSourceOutcome(req.ip, err.code);
      return reply.status(err.status).send({ error: err.code, error_description: err.message });
    }
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") return reply.status(413).send({ error: "request_too_large", error_description: "The request body is larger than 64 KiB." });
    if (err.statusCode !== undefined && err.statusCode < 500) return reply.status(err.statusCode).send({ error: "invalid_request", error_description: err.message });
    options.log?.("authority error", { err: err.message });
    return reply.status(500).send({ error: "server_error", error_description: "The authority failed to handle this request." });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: "not_found", error_description: `No endpoint ${req.method} ${req.url.split("?")[0] ?? ""}` }));
  // A source that used up its failed guesses is refused on the guarded endpoints (limits.ts).
  app.addHook("onRequest", (req, _reply, done) => {
    if (!isGuarded(req.url)) return done();
    try {
      service.limits.admitSource(req.ip);
      done();
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
    }
  });
  app.addHook("onSend", (_req, reply, payload, done) => {
    reply.header("Cache-Control", "no-store");
    reply.header("X-Content-Type-Options", "nosniff");
    done(null, payload);
  });

  async function userOf(req: FastifyRequest): Promise<string> {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer (\S+)$/.exec(header);
    const token = m?.[1];
    // A Link signed in with OAuth sends an access token; a locally provisioned Link its Link token.
    const userId = token === undefined ? null : token.startsWith("pat_") ? await options.oauth.userForAccessToken(token) : await service.userForLinkToken(token);
    if (userId === null) throw new ServiceError(401, "invalid_token", "A valid Link token is required (Authorization: Bearer ...).");
    return userId;
  }

  app.get("/healthz", () => ({ status: "ok", version: LINK_VERSION }));
  registerOAuthRoutes(app, options.oauth, options.https !== null);

  // --- Link API ---
  app.get("/v1/me", async (req) => ({ userId: await userOf(req) }));
  app.post("/v1/instances", async (req, reply) => {
    const userId = await userOf(req);
    const { name } = parse(InstanceBody, req.body);
    return reply.status(201).send({ instanceId: await service.registerInstance(userId, name) });
  });
  app.get("/v1/instances/:id", async (req, reply) => {
    const userId = await userOf(req);
    const { id } = parse(IdParams, req.params);
    if (!(await service.instanceExists(userId, id))) throw new ServiceError(404, "instance_not_found", `No instance ${id} for this account.`);
    return reply.send({ instanceId: id });
  });
  // Sign-out (issue 13 item 8): the instance is invalid everywhere from now on; its grants end.
  app.post("/v1/instances/:id/revoke", async (req) => service.revokeInstance(await userOf(req), parse(IdParams, req.params).id));
  app.get("/v1/requests", async (req) => service.listRequests(await userOf(req), parse(RequestsQuery, req.query).status));
  app.post("/v1/requests/:id/approve", async (req) => {
    const userId = await userOf(req);
    return service.approve(userId, parse(IdParams, req.params).id, parse(ApproveBodySchema, req.body));
  });
  app.post("/v1/requests/:id/deny", async (req) => service.deny(await userOf(req), parse(IdParams, req.params).id));
  app.get("/v1/grants", async (req) => service.listGrants(await userOf(req), parse(GrantsQuery, req.query).all === "true"));
  app.post("/v1/grants/:id/revoke", async (req) => {
    const userId = await userOf(req);
    return service.revokeGrant(userId, parse(IdParams, req.params).id, parse(RevokeBody, req.body ?? {}).reason);
  });
  app.get("/v1/secrets", async (req) => service.listSecrets(await userOf(req)));
  app.put("/v1/secrets/:name", async (req) => {
    const userId = await userOf(req);
    return service.setSecret(userId, parse(NameParams, req.params).name, parse(SecretBody, req.body).value);
  });
  app.delete("/v1/secrets/:name", async (req, reply) => {
    await service.deleteSecret(await userOf(req), parse(NameParams, req.params).name);
    return reply.status(204).send();
  });
  app.post("/v1/usage", async (req) => ({ recorded: await service.recordUsage(await userOf(req), parse(UsageReportSchema, req.body)) }));
  app.get("/v1/audit", async (req) => service.listAudit(await userOf(req), parse(AuditQuery, req.query)));
  app.get("/v1/events", async (req, reply) => {
    const userId = await userOf(req);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
    res.write(": connected\n\n");
    const unsubscribe = bus.subscribe((e) => {
      if (e.userId === userId) res.write(`data: ${JSON.stringify(e)}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(": ping\n\n"), 15_000);
    req.raw.on("close", () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  });

  // --- Agent API ---
  app.post("/v1/agent/resolve", async (req, reply) => {
    const body = parse(AgentResolveBodySchema, req.body);
    // Bridge until the agent routes take the bearer's account (wt-contract): the instance's owner.
    const result = await service.resolve(await service.instanceOwner(body.instanceId), body);
    return reply.status(result.status === "pending" ? 202 : 200).send(result);
  });
  app.post("/v1/agent/requests/:id/wait", async (req) => {
    const body = parse(AgentWaitBodySchema, req.body);
    const abort = new AbortController();
    req.raw.on("close", () => abort.abort());
    return { status: await service.waitForRequest(await service.instanceOwner(body.instanceId), body, parse(IdParams, req.params).id, body.timeoutMs, abort.signal) };
  });

  // --- pyper-sdk compatibility ---
  app.post(PYPER_PATHS.resolveMapping, async (req) => service.pyperResolveMapping(parse(PyperResolveSchema, req.body)));
  app.post(PYPER_PATHS.scopedCredentials, async (req) => service.pyperScopedCredentials(parse(PyperScopedSchema, req.body)));
  app.post(PYPER_PATHS.exchangeSecret, async (req) => {
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1] ?? null;
    return service.pyperExchange(parse(PyperExchangeSchema, req.body), bearer);
  });

  return app;
}

export type { FastifyReply };

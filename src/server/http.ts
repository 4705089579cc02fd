/**
 * The authority's HTTP API on Fastify, registered from the shared route table
 * (`shared/authority-routes.ts`) with fastify-type-provider-zod validating params, query and body:
 * the Link API and the Agent API (both need the Link's bearer credential; agent calls are answered
 * only for instances of that credential's account), the optional pyper-sdk compatibility endpoints
 * (off unless `pyperEndpoints`), and the event stream (SSE). Every error is
 * `{error, error_description}` with the status pyper-sdk maps to its exceptions.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Socket } from "node:net";
import type { ZodType } from "zod";
import { PYPER_PATHS, PyperExchangeSchema, PyperResolveSchema, PyperScopedSchema } from "../shared/pyper.js";
import { AuthorityRoutes as R } from "../shared/authority-routes.js";
import {
  authorityPresenceAction,
  type AuthorityPresenceOp,
  type AuthorityPresenceTerms,
} from "../shared/authority-presence.js";
import type { AuthorityPresence } from "../shared/presence.js";
import { LINK_VERSION } from "../shared/version.js";
import { socketEnds } from "../shared/socket-owner.js";
import { clientSource } from "./client-source.js";
import { createStreamRegistry, type EventBus, type StreamRegistry } from "./events.js";
import { checkLocalUser, type LocalUserVerdict } from "./local-user.js";
import type { OAuthService } from "./oauth.js";
import { registerOAuthRoutes } from "./oauth-routes.js";
import type { PresenceVerifier } from "./presence.js";
import { ServiceError, type AuthorityService } from "./service/index.js";
import { AGENT_DEFAULTS } from "../shared/defaults.js";
import type { AuthorityErrorBody, AuthorityErrorCode } from "../shared/authority-errors.js";

export interface AuthorityHttpOptions {
  /** Serve only the user who runs this process (the embedded authority; server/local-user.ts). */
  localUserOnly?: boolean;
  /**
   * Proxies whose X-Forwarded-For names the client (Fastify's `trustProxy`: addresses, CIDRs or
   * "loopback"); null trusts none. Throttling counts failures per client address (oauth.ts), so
   * behind a proxy that is not trusted every client would share the proxy's budget.
   */
  trustProxy?: string | null;
  service: AuthorityService;
  oauth: OAuthService;
  /** Checks the proof of presence every widening route needs (presence.ts). */
  presence: PresenceVerifier;
  bus: EventBus;
  https: { key: string; cert: string } | null;
  /**
   * Serve pyper-sdk's three endpoints (`PYPER_PATHS`). Default false: they take no account
   * credential and see no program, so anyone who can reach the authority and knows an instance ID
   * and a client ID can read the grants approved for any program of that client ID on that
   * instance. Grants bound to a program, session or process, and use-only grants, are never served
   * there (service/pyper.ts). Turn on only where that is acceptable.
   */
  pyperEndpoints?: boolean;
  /** How often open event streams re-check their credential, in ms (default 5,000). */
  streamRecheckMs?: number;
  /** Long-polls in flight per agent (account + instance + client ID) before 429 `rate_limited` (default 20). */
  maxWaitsPerAgent?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Paths of the pyper-sdk endpoints (defined once in shared/pyper.ts; re-exported for existing importers). */
export { PYPER_PATHS };

/** The app plus what its owner must stop before `close()`: open event streams and long-polls. */
export interface AuthorityApp {
  app: FastifyInstance;
  /** Ends every event stream and wakes every wait, so `app.close()` does not wait for them. */
  drain: () => void;
  streams: StreamRegistry;
}

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

/**
 * Builds the authority's Fastify app (not listening). Call `drain()` before `app.close()` on
 * shutdown (`startAuthority` does).
 */
/** Endpoints where a caller names an instance, client, credential or device code it might be guessing. */
function isGuarded(url: string): boolean {
  return url.startsWith("/v1/agent/") || url.startsWith("/pyper/") || url.startsWith("/oauth/token");
}

/** Every error body the authority writes: a code from the closed list (shared/authority-errors.ts) and a sentence. */
function errorBody(code: AuthorityErrorCode, description: string): AuthorityErrorBody {
  return { error: code, error_description: description };
}

export function buildAuthorityApp(options: AuthorityHttpOptions): AuthorityApp {
  const { service, bus } = options;
  // The HTTPS and HTTP instances differ only in their server type; routes are written once.
  const base: FastifyInstance = options.https
    ? Fastify({
        https: options.https,
        bodyLimit: 64 * 1024,
        logger: false,
        return503OnClosing: true,
        trustProxy: options.trustProxy ?? false,
      })
    : Fastify({
        bodyLimit: 64 * 1024,
        logger: false,
        return503OnClosing: true,
        trustProxy: options.trustProxy ?? false,
      });
  base.setValidatorCompiler(validatorCompiler);
  base.setSerializerCompiler(serializerCompiler);
  const app = base.withTypeProvider<ZodTypeProvider>();

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ServiceError) {
      // Issue 16 item 16: failed guesses on the agent and token endpoints count against the source address.
      if (isGuarded(req.url)) service.limits.recordSourceOutcome(clientSource(req.ip), err.code);
      return reply.status(err.status).send(errorBody(err.code, err.message));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const detail = err.validation
        .slice(0, 3)
        .map(
          (i) =>
            `${i.instancePath.replace(/^\//, "").replaceAll("/", ".") || err.validationContext}: ${i.message ?? "invalid"}`,
        )
        .join("; ");
      return reply.status(400).send(errorBody("invalid_request", detail));
    }
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE")
      return reply.status(413).send(errorBody("request_too_large", "The request body is larger than 64 KiB."));
    if (err.statusCode !== undefined && err.statusCode < 500)
      return reply.status(err.statusCode).send(errorBody("invalid_request", err.message));
    options.log?.("authority error", { err: err.message });
    return reply.status(500).send(errorBody("server_error", "The authority failed to handle this request."));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send(errorBody("not_found", `No endpoint ${req.method} ${req.url.split("?")[0] ?? ""}`)),
  );
  if (options.localUserOnly === true) {
    // Before anything else: another local user's process gets nothing (not even a sign-up page).
    // Checked once per connection, as the Link does: a keep-alive socket keeps its owner.
    const verdicts = new WeakMap<Socket, Promise<LocalUserVerdict>>();
    app.addHook("onRequest", async (req, reply) => {
      let pending = verdicts.get(req.socket);
      if (pending === undefined) {
        pending = checkLocalUser(socketEnds(req.socket));
        verdicts.set(req.socket, pending);
      }
      const verdict = await pending;
      if (!verdict.allow) await reply.status(403).send(errorBody("foreign_user", verdict.message));
    });
  }
  // A source that used up its failed guesses is refused on the guarded endpoints (service/limits.ts).
  app.addHook("onRequest", (req, _reply, done) => {
    if (!isGuarded(req.url)) return done();
    try {
      service.limits.admitSource(clientSource(req.ip));
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

  /** Who a credential names now: an OAuth access token (`pat_…`), or a provisioned Link token. */
  function userForToken(token: string): Promise<string | null> {
    return token.startsWith("pat_") ? options.oauth.userForAccessToken(token) : service.userForLinkToken(token);
  }
  function bearerOf(req: FastifyRequest): string | null {
    return /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1] ?? null;
  }
  async function userOf(req: FastifyRequest): Promise<string> {
    const token = bearerOf(req);
    const userId = token === null ? null : await userForToken(token);
    if (userId === null)
      throw new ServiceError(401, "invalid_token", "A valid Link token is required (Authorization: Bearer ...).");
    return userId;
  }

  // Credentials are checked before anything else (onRequest), so an unauthenticated caller learns
  // nothing from validation errors; handlers read the checked user with `user(req)`.
  const users = new WeakMap<FastifyRequest, string>();
  const authed = async (req: FastifyRequest): Promise<void> => {
    users.set(req, await userOf(req));
  };
  function user(req: FastifyRequest): string {
    const userId = users.get(req);
    if (userId === undefined)
      throw new ServiceError(401, "invalid_token", "A valid Link token is required (Authorization: Bearer ...).");
    return userId;
  }

  /** Refuses (403) unless `presence` proves the person is there for exactly `op` with `terms`. */
  function present<O extends AuthorityPresenceOp>(
    req: FastifyRequest,
    op: O,
    terms: AuthorityPresenceTerms[O],
    presence: AuthorityPresence | undefined,
  ): Promise<void> {
    return options.presence.verify(user(req), authorityPresenceAction(op, terms), presence, req.ip);
  }

  const streams = createStreamRegistry(userForToken, options.streamRecheckMs);
  const waits = new Set<AbortController>();
  const waitsPerAgent = new Map<string, number>();
  const maxWaits = options.maxWaitsPerAgent ?? AGENT_DEFAULTS.maxWaitsPerAgent;

  app.get(R.health.path, () => ({ status: "ok" as const, version: LINK_VERSION }));
  registerOAuthRoutes(base, options.oauth, options.https !== null, () => void streams.recheckNow());

  // --- Link API ---
  app.get(R.me.path, { onRequest: authed, schema: { querystring: R.me.query } }, async (req) =>
    service.whoAmI(user(req), req.query.instanceId),
  );
  app.post(
    R.registerInstance.path,
    { onRequest: authed, schema: { body: R.registerInstance.body } },
    async (req, reply) => {
      const userId = user(req);
      return reply.status(201).send({ instanceId: await service.registerInstance(userId, req.body.name) });
    },
  );
  app.get(R.getInstance.path, { onRequest: authed, schema: { params: R.getInstance.params } }, async (req, reply) => {
    const userId = user(req);
    const { id } = req.params;
    if (!(await service.instanceExists(userId, id)))
      throw new ServiceError(404, "instance_not_found", `No instance ${id} for this account.`);
    return reply.send({ instanceId: id });
  });
  app.post(R.revokeInstance.path, { onRequest: authed, schema: { params: R.revokeInstance.params } }, async (req) =>
    service.revokeInstance(user(req), req.params.id),
  );
  app.get(R.listRequests.path, { onRequest: authed, schema: { querystring: R.listRequests.query } }, async (req) =>
    service.listRequests(user(req), req.query.status),
  );
  app.post(
    R.approveRequest.path,
    { onRequest: authed, schema: { params: R.approveRequest.params, body: R.approveRequest.body } },
    async (req) => {
      const { presence, ...terms } = req.body;
      await present(req, "approveRequest", { requestId: req.params.id, ...terms }, presence);
      return service.approve(user(req), req.params.id, terms);
    },
  );
  app.post(R.denyRequest.path, { onRequest: authed, schema: { params: R.denyRequest.params } }, async (req) =>
    service.deny(user(req), req.params.id),
  );
  app.post(R.requesterGone.path, { onRequest: authed, schema: { params: R.requesterGone.params } }, async (req) =>
    service.requesterGone(user(req), req.params.id),
  );
  app.get(R.listGrants.path, { onRequest: authed, schema: { querystring: R.listGrants.query } }, async (req) =>
    service.listGrants(user(req), req.query.all),
  );
  app.post(R.revokeGrant.path, { onRequest: authed, schema: { params: R.revokeGrant.params } }, async (req) => {
    const userId = user(req);
    // An empty POST is a plain revoke: the body is optional on the wire.
    return service.revokeGrant(userId, req.params.id, parse(R.revokeGrant.body, req.body ?? {}).reason);
  });
  app.put(
    R.updateGrantPolicy.path,
    { onRequest: authed, schema: { params: R.updateGrantPolicy.params, body: R.updateGrantPolicy.body } },
    async (req) => {
      await present(req, "updateGrantPolicy", { grantId: req.params.id, policy: req.body.policy }, req.body.presence);
      return service.updateGrantPolicy(user(req), req.params.id, req.body.policy);
    },
  );
  app.get(R.listLegacyGrants.path, { onRequest: authed }, async (req) => service.listLegacyGrants(user(req)));
  app.post(R.keepLegacyGrants.path, { onRequest: authed, schema: { body: R.keepLegacyGrants.body } }, async (req) => {
    await present(req, "keepLegacyGrants", { grantIds: req.body.grantIds }, req.body.presence);
    return { kept: await service.keepLegacyGrants(user(req), req.body.grantIds) };
  });
  app.get(R.listSecrets.path, { onRequest: authed }, async (req) => service.listSecrets(user(req)));
  app.put(
    R.setSecret.path,
    { onRequest: authed, schema: { params: R.setSecret.params, body: R.setSecret.body } },
    async (req) => {
      const { hosts } = req.body;
      // A value alone widens nothing; hosts say where it may go.
      if (hosts !== undefined) await present(req, "setSecret", { name: req.params.name, hosts }, req.body.presence);
      return service.setSecret(user(req), req.params.name, req.body.value, hosts);
    },
  );
  app.put(
    R.setSecretHosts.path,
    { onRequest: authed, schema: { params: R.setSecretHosts.params, body: R.setSecretHosts.body } },
    async (req) => {
      await present(req, "setSecretHosts", { name: req.params.name, hosts: req.body.hosts }, req.body.presence);
      return service.setSecretHosts(user(req), req.params.name, req.body.hosts);
    },
  );
  app.delete(
    R.deleteSecret.path,
    { onRequest: authed, schema: { params: R.deleteSecret.params } },
    async (req, reply) => {
      await service.deleteSecret(user(req), req.params.name);
      return reply.status(204).send();
    },
  );
  app.post(R.recordUsage.path, { onRequest: authed, schema: { body: R.recordUsage.body } }, async (req) => ({
    recorded: await service.recordUsage(user(req), req.body),
  }));
  app.get(R.audit.path, { onRequest: authed, schema: { querystring: R.audit.query } }, async (req) =>
    service.listAudit(user(req), req.query),
  );
  app.get("/v1/events", { onRequest: authed }, async (req, reply) => {
    const token = bearerOf(req);
    const userId = user(req);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
    res.write(": connected\n\n");
    const unsubscribe = bus.subscribe((e) => {
      if (e.userId === userId) res.write(`data: ${JSON.stringify(e)}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(": ping\n\n"), 15_000);
    // Events may have been missed (the database's LISTEN connection was lost): end the stream, so
    // the Link stops answering from its grant cache and reconnects.
    const unGap = bus.onGap(() => {
      stop();
      res.end();
    });
    const stop = (): void => {
      clearInterval(heartbeat);
      unsubscribe();
      unGap();
      forget();
    };
    const forget = streams.add({
      token: token ?? "",
      end: () => {
        stop();
        res.end();
      },
    });
    res.on("close", stop);
  });

  // --- Agent API: the Link asks for its agents, with its own credential ---
  app.post(R.agentResolve.path, { onRequest: authed, schema: { body: R.agentResolve.body } }, async (req, reply) => {
    const result = await service.resolve(user(req), req.body);
    return reply.status(result.status === "pending" ? 202 : 200).send(result);
  });
  app.post(
    R.agentWait.path,
    { onRequest: authed, schema: { params: R.agentWait.params, body: R.agentWait.body } },
    async (req, reply) => {
      const userId = user(req);
      const body = req.body;
      const key = `${userId}\u0000${body.instanceId}\u0000${body.agentClientId}`;
      const inFlight = waitsPerAgent.get(key) ?? 0;
      if (inFlight >= maxWaits)
        throw new ServiceError(
          429,
          "rate_limited",
          `Too many pending waits: agent ${body.agentClientId} already waits for ${inFlight} approvals on this instance.`,
        );
      waitsPerAgent.set(key, inFlight + 1);
      const abort = new AbortController();
      waits.add(abort);
      // The response's "close" means the caller went away (the request's fires once its body is read).
      reply.raw.on("close", () => abort.abort());
      try {
        return { status: await service.waitForRequest(userId, body, req.params.id, body.timeoutMs, abort.signal) };
      } finally {
        waits.delete(abort);
        const left = (waitsPerAgent.get(key) ?? 1) - 1;
        if (left === 0) waitsPerAgent.delete(key);
        else waitsPerAgent.set(key, left);
      }
    },
  );

  // --- pyper-sdk compatibility (unauthenticated; only when the operator turns it on) ---
  if (options.pyperEndpoints === true) {
    app.post(PYPER_PATHS.resolveMapping, { schema: { body: PyperResolveSchema } }, async (req) =>
      service.pyperResolveMapping(req.body),
    );
    app.post(PYPER_PATHS.scopedCredentials, { schema: { body: PyperScopedSchema } }, async (req) =>
      service.pyperScopedCredentials(req.body),
    );
    app.post(PYPER_PATHS.exchangeSecret, { schema: { body: PyperExchangeSchema } }, async (req) =>
      service.pyperExchange(req.body, bearerOf(req)),
    );
  }

  return {
    app: base,
    streams,
    drain() {
      streams.endAll("authority shutting down");
      for (const w of waits) w.abort();
    },
  };
}

export type { FastifyReply };

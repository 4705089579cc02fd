/**
 * `piper-link mcp`: an MCP server on stdio (the official `@modelcontextprotocol/sdk`) that lets a
 * coding agent (Claude Code, Cursor…) use the person's secrets without ever seeing them (DESIGN.md
 * section 8, issue 14 item 6). It is an agent of the Link like any SDK user: one Piper client, the
 * same grants, prompts and rules as `call`. Its hello says it acts for its parent past launchers
 * (`sh -c`, npx), so the approval prompt names the MCP client's process rather than this helper or
 * npx's shell.
 *
 * Tools:
 * - `list_secrets`: the variable names this agent may use now (its live grants) and what each allows.
 * - `http_request`: an HTTPS request made by the Link with secrets injected by name (the `call`
 *   message's shape); the answer's status, headers and body text, echoes of a value redacted.
 * - `request_access`: asks the person to allow a secret for one method and URL without making the
 *   call (the `requestAccess` message); answers `granted` or `pending` with the request's ID.
 * - `check_access`: whether this agent holds a live grant for a secret (and for a method and URL),
 *   from its grants list; the grant's terms, never the value.
 * - `status`: whether Piper Link runs, is signed in and unlocked, and how many grants this agent holds.
 *
 * No tool returns a value: the Piper client here never asks for one (no `resolve`), so none ever
 * enters this process; a test asks every tool for it as a prompt-injected model would.
 *
 * Stdout carries the MCP protocol only; diagnostics go to stderr. The command itself is defined in
 * mcp.ts, which loads this file (and the MCP SDK) only when `piper-link mcp` runs.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { CALL_LIMITS, CallAuthSchema, CallMethodSchema, REDACTION_MARK } from "../../shared/calls.js";
import { destinationAllows } from "../../shared/grant-terms.js";
import { normalizeVariable, type ActingFor } from "../../shared/protocol.js";
import { LINK_VERSION } from "../../shared/version.js";
import { PiperError, type PiperClient } from "@piper-link/sdk";
import { ExitCode } from "./output.js";

/**
 * Most body bytes an `http_request` result carries (64 KiB). An answer beyond it is cut there (the
 * rest is not read: the Link's call is cancelled) and the result says `bodyTruncated: true`;
 * `bodyBytes` then counts only what was read. Chosen to keep one tool result within what MCP
 * clients put into a model's context.
 */
export const MCP_BODY_LIMIT_BYTES = 64 * 1024;

/** Content types returned as text; any other answer's body is returned in base64. */
const TEXT_TYPE = /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript|x-www-form-urlencoded|x-ndjson)\b)/i;

const SecretEntrySchema = z.object({
  name: z.string().describe("the name to put in `auth` of http_request"),
  mode: z
    .enum(["read", "use", "unknown"])
    .describe(
      "read: the value may also be read by programs; use: only through Piper Link calls; unknown: the authority does not say",
    ),
  destinations: z
    .array(z.object({ host: z.string(), method: z.string().optional(), path: z.string().optional() }))
    .describe("for `use` grants: where calls may go"),
  expiresAt: z.string().nullable().describe("ISO time the grant ends; null: until revoked"),
});

const ListSecretsOutput = { secrets: z.array(SecretEntrySchema) };

const HttpRequestInput = {
  method: CallMethodSchema.default("GET").describe("HTTP method, upper case"),
  url: z.string().min(1).max(8192).describe("an https:// URL"),
  headers: z
    .record(z.string(), z.string())
    .optional()
    .describe("plain headers sent as they are (not Authorization or Host)"),
  body: z.string().optional().describe(`request body as text (UTF-8), at most ${CALL_LIMITS.requestBodyBytes} bytes`),
  auth: CallAuthSchema.describe(
    "secrets to inject, by name (see list_secrets): bearer: NAME (Authorization: Bearer), basic: NAME (stored as user:password), header: {Header-Name: NAME}, query: {param: NAME}, jsonField: {dot.path: NAME}, formField: {field: NAME}; combinable",
  ),
  reason: z
    .string()
    .max(500)
    .optional()
    .describe("why, shown to the person in the approval prompt with the method and URL"),
};

const HttpRequestOutput = {
  status: z.number().int(),
  statusText: z.string(),
  headers: z
    .array(z.tuple([z.string(), z.string()]))
    .describe("response headers, in order, echoes of a secret redacted"),
  body: z.string().describe("the body as text, or base64 when bodyEncoding is base64"),
  bodyEncoding: z.enum(["utf8", "base64"]),
  bodyBytes: z.number().int().describe("body bytes read"),
  bodyTruncated: z
    .boolean()
    .describe(`true when the answer was longer than ${MCP_BODY_LIMIT_BYTES} bytes and was cut there`),
  redacted: z.boolean().describe(`true when an echo of an injected secret was replaced by ${REDACTION_MARK}`),
};

const SecretName = z
  .string()
  .min(1)
  .max(256)
  .describe("the secret's name, as in list_secrets or http_request's auth (e.g. OPENAI_API_KEY)");

const RequestAccessInput = {
  name: SecretName,
  url: z
    .string()
    .min(1)
    .max(8192)
    .describe("the https:// URL the secret is for (as you would pass it to http_request)"),
  method: CallMethodSchema.default("GET").describe("HTTP method, upper case"),
  reason: z
    .string()
    .max(500)
    .optional()
    .describe("why, shown to the person in the approval prompt with the method and URL"),
};

const RequestAccessOutput = {
  name: z.string(),
  state: z
    .enum(["granted", "pending"])
    .describe("granted: a grant already allows this use; pending: the person was asked in Piper Link"),
  requestId: z.string().nullable().describe("the request waiting for the person (pending); null when granted"),
};

const CheckAccessInput = {
  name: SecretName,
  url: z
    .string()
    .min(1)
    .max(8192)
    .optional()
    .describe("an https:// URL: also say whether the grant allows a call there"),
  method: CallMethodSchema.default("GET").describe("HTTP method for `url`, upper case"),
};

const CheckAccessOutput = {
  name: z.string(),
  granted: z.boolean().describe("true when this agent holds a live grant for the secret"),
  mode: z.enum(["read", "use", "unknown"]).nullable().describe("what the grant allows (null when there is none)"),
  destinations: z
    .array(z.object({ host: z.string(), method: z.string().optional(), path: z.string().optional() }))
    .describe("for `use` grants: where calls may go"),
  expiresAt: z.string().nullable().describe("ISO time the grant ends; null: until revoked, or no grant"),
  allowsUrl: z.boolean().nullable().describe("whether the grant allows `method` to `url` (null when no url was given)"),
};

const StatusOutput = {
  link: z.enum(["running", "not_running"]),
  state: z
    .enum(["ready", "locked", "not_signed_in", "unreachable"])
    .describe("ready: secrets can be asked for and used"),
  grants: z.number().int().nullable().describe("how many secrets this agent may use now (null unless ready)"),
  version: z.string().describe("this MCP server's Piper Link version"),
};

export interface McpServerOptions {
  /** How long `http_request` waits for the person to approve, in ms. */
  approvalTimeoutMs: number;
}

/** The error shape of a tool: an MCP tool error whose text starts with the stable code. */
function toolError(code: string, message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: `${code}: ${message}` }] };
}

/** Reads at most `limit` bytes of `res`'s body; cancels the rest (which cancels the Link's call). */
async function readCapped(res: Response, limit: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = res.body?.getReader();
  if (reader === undefined) return { bytes: Buffer.alloc(0), truncated: false };
  const parts: Buffer[] = [];
  let total = 0;
  for (;;) {
    const part = await reader.read();
    if (part.done) return { bytes: Buffer.concat(parts), truncated: false };
    const chunk: Uint8Array = part.value;
    const room = limit - total;
    if (chunk.length > room) {
      parts.push(Buffer.from(chunk.subarray(0, room)));
      await reader.cancel();
      return { bytes: Buffer.concat(parts), truncated: true };
    }
    parts.push(Buffer.from(chunk));
    total += chunk.length;
  }
}

/**
 * Builds the MCP server over a Piper client (not connected to a transport). Tool failures are MCP
 * tool errors (`isError`) whose text is `CODE: sentence`, CODE being the agent protocol's stable
 * error code (`destination_not_allowed`, `grant_needed`, `denied`, `timeout`, `policy_violation`,
 * `upstream_unavailable`, `bad_request`, `link_not_running`, `not_logged_in`…).
 */
export function createMcpServer(client: PiperClient, options: McpServerOptions): McpServer {
  const server = new McpServer({ name: "piper-link", version: LINK_VERSION });
  const failed = (err: unknown): CallToolResult => {
    if (err instanceof PiperError) return toolError(err.code, err.message);
    throw err;
  };

  server.registerTool(
    "list_secrets",
    {
      title: "List usable secrets",
      description:
        "Names of the secrets this agent may use now through Piper Link (its live grants), and where each may be sent. Values are never shown. A secret without a grant can still be named in http_request: the person is then asked to approve it.",
      outputSchema: ListSecretsOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async () => {
      try {
        const grants = await client.listGrants();
        const secrets = grants.map((g) => ({
          // Variables are stored normalized (lower-case); lookups ignore case, and people write them upper-case.
          name: g.variable.toUpperCase(),
          mode: g.mode === null ? ("unknown" as const) : g.mode.kind,
          destinations: g.mode?.kind === "use" ? g.mode.destinations : [],
          expiresAt: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString(),
        }));
        const text =
          secrets.length === 0
            ? "No secret is granted to this agent yet; name one in http_request to ask the person."
            : secrets
                .map(
                  (s) =>
                    `${s.name} (${s.mode}${s.destinations.length ? `: ${s.destinations.map((d) => `${d.method ?? ""} ${d.host}${d.path ?? ""}`.trim()).join(", ")}` : ""})`,
                )
                .join("\n");
        return { content: [{ type: "text", text }], structuredContent: { secrets } };
      } catch (err) {
        return failed(err);
      }
    },
  );

  server.registerTool(
    "http_request",
    {
      title: "HTTPS request with secrets injected by Piper Link",
      description: `Makes an HTTPS request through Piper Link, which injects the named secrets; you never see their values, and any echo of them in the answer is replaced by ${REDACTION_MARK}. The person may be asked to approve first (the prompt shows the method and URL). The body is returned up to ${MCP_BODY_LIMIT_BYTES} bytes.`,
      inputSchema: HttpRequestInput,
      outputSchema: HttpRequestOutput,
      annotations: { readOnlyHint: false, openWorldHint: true },
    },
    async (input) => {
      // Checked here in bytes: a frame over the Link's limit would close the connection instead.
      if (input.body !== undefined && Buffer.byteLength(input.body) > CALL_LIMITS.requestBodyBytes) {
        return toolError(
          "bad_request",
          `The body is larger than ${CALL_LIMITS.requestBodyBytes} bytes, the most a call may send.`,
        );
      }
      try {
        const res = await client.fetch(input.url, {
          method: input.method,
          ...(input.headers ? { headers: input.headers } : {}),
          ...(input.body !== undefined ? { body: input.body } : {}),
          auth: input.auth,
          approvalTimeoutMs: options.approvalTimeoutMs,
          ...(input.reason ? { reason: input.reason } : {}),
          onPending: ({ requestId }) =>
            process.stderr.write(`piper-link mcp: waiting for approval in Piper Link (request ${requestId})\n`),
        });
        const { bytes, truncated } = await readCapped(res, MCP_BODY_LIMIT_BYTES);
        const headers: Array<[string, string]> = [];
        res.headers.forEach((v, k) => {
          if (k !== "x-piper-redacted") headers.push([k, v]);
        });
        const isText = bytes.length === 0 || TEXT_TYPE.test(res.headers.get("content-type") ?? "text/plain");
        const body = isText ? bytes.toString("utf8") : bytes.toString("base64");
        // The head says whether its headers held a value; the body's redactions show as the mark.
        const redacted = res.headers.get("x-piper-redacted") === "true" || bytes.includes(REDACTION_MARK);
        const structured = {
          status: res.status,
          statusText: res.statusText,
          headers,
          body,
          bodyEncoding: isText ? ("utf8" as const) : ("base64" as const),
          bodyBytes: bytes.length,
          bodyTruncated: truncated,
          redacted,
        };
        const summary = `HTTP ${res.status} ${res.statusText}${redacted ? " (a secret's echo was redacted)" : ""}${truncated ? ` (body cut at ${MCP_BODY_LIMIT_BYTES} bytes)` : ""}\n\n${body}`;
        return { content: [{ type: "text", text: summary }], structuredContent: structured };
      } catch (err) {
        return failed(err);
      }
    },
  );
  server.registerTool(
    "request_access",
    {
      title: "Ask the person to allow a secret for a URL",
      description:
        "Asks the person, in Piper Link, to allow this agent to use a secret in calls with this method to this URL, without making the call. Returns granted (already allowed) or pending (the person was asked; the request's ID). Never returns the secret's value: Piper Link injects it into http_request calls itself. Making the http_request directly also asks and waits for the approval.",
      inputSchema: RequestAccessInput,
      outputSchema: RequestAccessOutput,
      annotations: { readOnlyHint: false, openWorldHint: false },
    },
    async (input) => {
      try {
        const r = await client.requestAccess(input.name, {
          url: input.url,
          method: input.method,
          ...(input.reason ? { reason: input.reason } : {}),
        });
        const structured = { name: input.name, state: r.state, requestId: r.requestId };
        const text =
          r.state === "granted"
            ? `granted: ${input.name} may already be used for ${input.method} ${input.url}.`
            : `pending: the person was asked in Piper Link to allow ${input.name} for ${input.method} ${input.url} (request ${r.requestId ?? ""}). Check with check_access, or make the http_request, which waits for the approval.`;
        return { content: [{ type: "text", text }], structuredContent: structured };
      } catch (err) {
        return failed(err);
      }
    },
  );

  server.registerTool(
    "check_access",
    {
      title: "Check whether a secret is granted",
      description:
        "Whether this agent may use a secret now (a live grant in Piper Link), what the grant allows and until when, and optionally whether it allows a call with this method to this URL. Never returns the value.",
      inputSchema: CheckAccessInput,
      outputSchema: CheckAccessOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async (input) => {
      let url: URL | null = null;
      if (input.url !== undefined) {
        try {
          url = new URL(input.url);
        } catch {
          return toolError("bad_request", `${JSON.stringify(input.url.slice(0, 200))} is not an absolute URL.`);
        }
      }
      try {
        const wanted = normalizeVariable(input.name);
        const grant = (await client.listGrants()).find((g) => normalizeVariable(g.variable) === wanted);
        const structured = {
          name: input.name,
          granted: grant !== undefined,
          mode: grant === undefined ? null : grant.mode === null ? ("unknown" as const) : grant.mode.kind,
          destinations: grant?.mode?.kind === "use" ? grant.mode.destinations : [],
          expiresAt: grant?.expiresAt == null ? null : new Date(grant.expiresAt).toISOString(),
          allowsUrl:
            url === null
              ? null
              : grant?.mode != null && url.protocol === "https:" && destinationAllows(grant.mode, input.method, url).ok,
        };
        const text =
          grant === undefined
            ? `${input.name} is not granted to this agent; use request_access (or name it in http_request) to ask the person.`
            : `${input.name} is granted (${structured.mode}${structured.expiresAt === null ? ", until revoked" : `, until ${structured.expiresAt}`})${structured.allowsUrl === null ? "" : structured.allowsUrl ? `; it allows ${input.method} ${input.url}` : `; it does not allow ${input.method} ${input.url} (request_access asks for it)`}.`;
        return { content: [{ type: "text", text }], structuredContent: structured };
      } catch (err) {
        return failed(err);
      }
    },
  );

  server.registerTool(
    "status",
    {
      title: "Piper Link status",
      description:
        "Whether Piper Link is running, signed in and unlocked (ready to give secrets to calls), and how many secrets this agent may use now. Never returns a value.",
      outputSchema: StatusOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async () => {
      const answer = (
        link: "running" | "not_running",
        state: "ready" | "locked" | "not_signed_in" | "unreachable",
        grants: number | null,
        sentence: string,
      ): CallToolResult => ({
        content: [{ type: "text", text: sentence }],
        structuredContent: { link, state, grants, version: LINK_VERSION },
      });
      try {
        const grants = await client.listGrants();
        return answer(
          "running",
          "ready",
          grants.length,
          `Piper Link is running and ready; this agent may use ${grants.length} secret${grants.length === 1 ? "" : "s"} now (list_secrets names them).`,
        );
      } catch (err) {
        if (!(err instanceof PiperError)) throw err;
        if (err.code === "link_not_running")
          return answer("not_running", "unreachable", null, `Piper Link is not running: ${err.message}`);
        if (err.code === "locked") return answer("running", "locked", null, `Piper Link is locked: ${err.message}`);
        if (err.code === "not_logged_in")
          return answer("running", "not_signed_in", null, `Nobody is signed in to Piper Link: ${err.message}`);
        return failed(err);
      }
    },
  );
  return server;
}

/** The options of `piper-link mcp`. */
export interface McpOptions {
  clientId: string;
  approvalTimeout: number;
  /** The Link's profile (`--profile`): the server finds that profile's Link. */
  profile: string;
}

/** Serves MCP on stdio until the MCP client closes stdin; the exit code. */
export async function serveMcp(o: McpOptions): Promise<number> {
  // Loaded on use: the daemon and the other commands do not need the SDK.
  const { createPiperClient } = await import("@piper-link/sdk");
  // For the MCP client that started this server, past any `sh -c` or npx in between (acting-for.ts).
  const actingFor: ActingFor = { kind: "parent", pastLaunchers: true };
  const client = createPiperClient({
    clientId: o.clientId,
    name: "Piper Link MCP",
    fallbackToEnv: false,
    actingFor,
    env: { ...process.env, PIPER_LINK_PROFILE: o.profile },
  });
  const server = createMcpServer(client, { approvalTimeoutMs: o.approvalTimeout });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    // The MCP client ends the session by closing our stdin.
    process.stdin.once("end", () => resolve());
    process.stdin.once("close", () => resolve());
  });
  await server.connect(transport);
  await closed;
  client.close();
  await server.close().catch(() => undefined);
  return ExitCode.ok;
}

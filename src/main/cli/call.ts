/**
 * `piper-link call [-X METHOD] URL --bearer NAME …`: curl-like calls made by the Link with secrets
 * injected by name (DESIGN.md section 8), for scripts that should never hold the value. The body
 * goes to stdout as it streams; `-i` / `-v` print the status line and headers to stderr; `--json`
 * prints one JSON object (status, headers, body, redacted) for scripts.
 */
import { type Command, InvalidArgumentError } from "commander";
import type { CallAuth } from "../../shared/calls.js";
import type { Runner } from "./commands.js";
import { ExitCode } from "./output.js";
import { AGENT_DEFAULTS } from "../../shared/defaults.js";

/** `KEY=NAME` pairs collected into a record (for --header, --query, --json-field, --form-field). */
function pair(what: string) {
  return (value: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const at = value.indexOf("=");
    if (at <= 0 || at === value.length - 1) throw new InvalidArgumentError(`use ${what}=SECRET_NAME`);
    return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  };
}

/** `-H 'Name: value'` headers the agent sends as they are. */
function header(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf(":");
  if (at <= 0) throw new InvalidArgumentError("use -H 'Name: value'");
  return { ...previous, [value.slice(0, at).trim()]: value.slice(at + 1).trim() };
}

interface CallOptions {
  request?: string;
  bearer?: string;
  basic?: string;
  // Absent until given once (no default, so --help shows none).
  header?: Record<string, string>;
  query?: Record<string, string>;
  jsonField?: Record<string, string>;
  formField?: Record<string, string>;
  H?: Record<string, string>;
  data?: string;
  include?: boolean;
  verbose?: boolean;
  json?: boolean;
  clientId: string;
  reason?: string;
  askIfRefused?: boolean;
  timeout: number;
}

/** Registers `piper-link call`; `profile()` is the global `--profile` (or PIPER_LINK_PROFILE). */
export function addCallCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("call")
    .description(
      "make an HTTPS request through Piper Link with secrets injected by name (the value never reaches this process)",
    )
    .argument("<url>", "the https:// URL")
    .option("-X, --request <method>", "the HTTP method (default GET, or POST with -d)")
    .option("--bearer <name>", "send secret NAME as Authorization: Bearer")
    .option("--basic <name>", "send secret NAME (stored as user:password) as Authorization: Basic")
    .option("--header <H=NAME>", "send secret NAME as header H, repeatable", pair("HEADER"))
    .option("--query <P=NAME>", "send secret NAME as query parameter P, repeatable", pair("PARAM"))
    .option("--json-field <PATH=NAME>", "set secret NAME at a dot path of the JSON body, repeatable", pair("PATH"))
    .option("--form-field <F=NAME>", "set secret NAME as field F of the form body, repeatable", pair("FIELD"))
    .option("-H <header>", "a plain header 'Name: value', repeatable", header)
    .option("-d, --data <body>", "the request body (text)")
    .option("-i, --include", "print the status line and headers to stderr")
    .option("-v, --verbose", "like -i, plus whether the answer was redacted")
    .option("--client-id <id>", "the agent client ID the person sees", "piper-link-call")
    .option("--reason <text>", "why (shown in the approval prompt with the method and URL)")
    .option(
      "--ask-if-refused",
      "when a grant does not allow this method and URL, ask in Piper Link instead of failing with destination_not_allowed",
    )
    .option("--timeout <ms>", "how long to wait for approval", (v) => Number(v), AGENT_DEFAULTS.approvalWaitMs)
    .option("--json", "print {status, headers, body, redacted} as JSON")
    .action(async (url: string, o: CallOptions) => {
      await run(() => callThroughLink(url, o, profile()), false);
    });
}

async function callThroughLink(url: string, o: CallOptions, profile: string): Promise<number> {
  const auth: CallAuth = {
    ...(o.bearer ? { bearer: o.bearer } : {}),
    ...(o.basic ? { basic: o.basic } : {}),
    ...(o.header ? { header: o.header } : {}),
    ...(o.query ? { query: o.query } : {}),
    ...(o.jsonField ? { jsonField: o.jsonField } : {}),
    ...(o.formField ? { formField: o.formField } : {}),
  };
  // Loaded on use: the daemon and the other commands do not need the SDK.
  const { createPiperClient, PiperError } = await import("@piper-link/sdk");
  // For its parent (the script or shell that runs `piper-link call`), as `piper-link mcp` does: a grant
  // then binds to that program, not to every program that runs piper-link from this folder.
  // The SDK finds the Link through the profile's discovery file; --profile is handed on that way.
  const client = createPiperClient({
    clientId: o.clientId,
    name: "piper-link call",
    fallbackToEnv: false,
    actingFor: { kind: "parent" },
    env: { ...process.env, PIPER_LINK_PROFILE: profile },
  });
  try {
    const res = await client.fetch(url, {
      method: o.request ?? (o.data !== undefined ? "POST" : "GET"),
      headers: o.H ?? {},
      ...(o.data !== undefined ? { body: o.data } : {}),
      auth,
      approvalTimeoutMs: o.timeout,
      ...(o.reason ? { reason: o.reason } : {}),
      ...(o.askIfRefused === true ? { askIfRefused: true } : {}),
      onPending: ({ requestId }) =>
        process.stderr.write(`Waiting for you to approve this call in Piper Link (request ${requestId})…\n`),
    });
    const redactedHead = res.headers.get("x-piper-redacted") === "true";
    if (o.json) {
      const body = await res.text();
      const headers: Array<[string, string]> = [];
      res.headers.forEach((v, k) => headers.push([k, v]));
      process.stdout.write(
        `${JSON.stringify({ status: res.status, headers, body, redacted: redactedHead || body.includes("[REDACTED by Piper Link]") })}\n`,
      );
    } else {
      if (o.include || o.verbose) {
        process.stderr.write(`HTTP ${res.status} ${res.statusText}\n`);
        res.headers.forEach((v, k) => process.stderr.write(`${k}: ${v}\n`));
        process.stderr.write("\n");
      }
      const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = res.body?.getReader();
      // Written as it arrives, so a streamed answer (SSE) is readable while it lasts.
      for (let part = await reader?.read(); part !== undefined && !part.done; part = await reader?.read())
        process.stdout.write(part.value);
      if (o.verbose) process.stderr.write(`\n(${redactedHead ? "redacted" : "headers not redacted"})\n`);
    }
    return res.status >= 400 ? ExitCode.failure : 0;
  } catch (err) {
    if (!(err instanceof PiperError)) throw err;
    // As every command reports (output.ts): one JSON document with --json, the documented exit codes.
    if (o.json) process.stdout.write(`${JSON.stringify({ error: err.code, message: err.message })}\n`);
    else process.stderr.write(`piper-link call: ${err.code}: ${err.message}\n`);
    return err.code === "link_not_running"
      ? ExitCode.notRunning
      : err.code === "bad_request"
        ? ExitCode.usage
        : ExitCode.failure;
  } finally {
    client.close();
  }
}

/**
 * The agent protocol's `call` (DESIGN.md sections 4 and 8): resolve each named secret through the
 * grant path (call-grants.ts), check every grant's destinations and time limits here too (defence
 * in depth: the authority checks them as well), build the request with the injections
 * (injections.ts), send it (upstream.ts), and stream the answer back as `call.head`, `call.chunk`s
 * and `call.end`, with every echo of an injected value redacted (redactor.ts). Each call is
 * audited (agent, program, secret names, method, host, path, status, bytes, duration, redacted) in
 * the Link's log and in the usage report to the authority — never a value, a body or a query value.
 */
import type { Logger } from "pino";
import { CALL_LIMITS, type Call, type CallAudit, type CallLimits } from "../../../shared/calls.js";
import { LinkError } from "../../../shared/errors.js";
import { checkPolicy, destinationAllows, type GrantTerms } from "../../../shared/grant-terms.js";
import type { LinkMessage } from "../../../shared/protocol.js";
import { auditProgram, type UsageReport } from "../../../shared/authority.js";
import type { Requester } from "../process/requester.js";
import type { CallGrant, CallGrants } from "./call-grants.js";
import { describeUrl, parseCallUrl, prepareRequest, secretNamesOf } from "./injections.js";
import { createStreamRedactor, needlesFor, redactString, RELEASE_AFTER_MS } from "./redactor.js";
import type { Upstream, UpstreamRequest } from "./upstream.js";
import { AGENT_DEFAULTS } from "../../../shared/defaults.js";

export interface CallHandlerDeps {
  now(): number;
  log: Logger;
  grants: CallGrants;
  upstream: Upstream;
  /** Where each call's audit detail goes to the authority (the grant cache's usage report). */
  recordUse(use: UsageReport["uses"][number]): void;
  limits?: Partial<CallLimits>;
}

/** Replaces a response header name that held a value (the mark itself is not a valid header name). */
const REDACTED_HEADER_NAME = "x-piper-link-redacted-name";

/** Refuses a use the grant's terms do not allow (destinations; hours, weekdays and end date). */
function checkTerms(name: string, terms: GrantTerms, method: string, url: URL, now: number): void {
  const destination = destinationAllows(terms.mode, method, url);
  if (!destination.ok) throw new LinkError(destination.code, `${name}: ${destination.reason}.`);
  // Use counts are the authority's to keep; here only what the clock alone decides.
  const policy = checkPolicy(terms.policy, { now, usesLastHour: 0, usesLastDay: 0 });
  if (!policy.ok) throw new LinkError(policy.code, `${name}: ${policy.reason}.`);
}

/**
 * What the handler reads of the agent's connection. `writable` (absent: always) resolves when the
 * agent's socket has room for more of an answer; the answer is read from the upstream no faster.
 */
export type CallRequester = Requester & { writable?: () => Promise<void> };

/**
 * Waits for `requester.writable()`; throws LinkError `timeout` when `signal` (a cancel, a closed
 * connection or the call's time limit) aborts first. After a cancel or a close nothing is sent.
 */
async function roomFor(requester: CallRequester, signal: AbortSignal): Promise<void> {
  if (requester.writable === undefined) return;
  const stopped = (): LinkError =>
    new LinkError("timeout", "The call ended while its answer waited for the agent to read what was already sent.");
  if (signal.aborted) throw stopped();
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(stopped());
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([requester.writable(), aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function programOf(requester: Requester): string | null {
  const p = requester.process;
  if (p === null) return null;
  // The executable and, for interpreters, the script (the first argument that is not an option).
  const script = p.commandLine?.slice(1).find((a) => !a.startsWith("-")) ?? null;
  const text = [p.executable, script].filter((s): s is string => s !== null && s !== "").join(" ");
  return text === "" ? null : text.slice(0, 1024);
}

/**
 * Performs one `call` for `requester`: its frames go through `send`; `signal` aborts when the agent
 * cancels the call or goes away.
 */
export type CallHandler = (
  requester: CallRequester,
  call: Call,
  send: (m: LinkMessage) => void,
  signal: AbortSignal,
) => Promise<void>;

/** Creates the `call` handler the agent channel dispatches to. */
export function createCallHandler(deps: CallHandlerDeps): CallHandler {
  const limits: CallLimits = { ...CALL_LIMITS, ...deps.limits };
  return async (requester, call, send, signal) => {
    const started = performance.now();
    const agent = requester.agent;
    if (agent === null) return;
    await requester.identification;
    const grants: Array<{ name: string; grant: CallGrant }> = [];
    // Every form of every value resolved so far: whatever string the agent gets is redacted with them.
    let needles: string[] = [];
    // Stops the body redactor's timer, so nothing is sent after the call's last frame.
    let stopRedactor = (): void => undefined;
    const audit: CallAudit = {
      secretNames: secretNamesOf(call.auth),
      method: call.method,
      host: "",
      path: "",
      status: null,
      bytes: 0,
      durationMs: 0,
      redacted: false,
      error: null,
      program: programOf(requester),
    };
    try {
      const url = parseCallUrl(call.url);
      Object.assign(audit, { host: describeUrl(url).host, path: describeUrl(url).path });
      if (audit.secretNames.length === 0)
        throw new LinkError(
          "bad_request",
          "A call names at least one secret in `auth`; without one, make the request yourself.",
        );
      const deadline = deps.now() + (call.approvalTimeoutMs ?? AGENT_DEFAULTS.approvalWaitMs);
      const shown = `${call.method} ${url.href}`;
      const reason = `Use without reading, in a call: ${shown}${call.reason ? ` — ${call.reason}` : ""}`.slice(0, 1000);
      for (const name of audit.secretNames) {
        const grant = await deps.grants.get(
          { agent, process: requester.process, connectionId: requester.connectionId },
          name,
          { method: call.method, url: url.href },
          { id: call.id, reason, wait: call.wait, askIfRefused: call.askIfRefused ?? false, deadline, signal, send },
        );
        // Listed before the check, so a refused use is audited against its grant too.
        grants.push({ name, grant });
        needles = [...new Set([...needles, ...needlesFor(grant.value)])];
        checkTerms(name, grant.terms, call.method, url, deps.now());
      }
      const prepared = prepareRequest(call, url, new Map(grants.map((g) => [g.name, g.grant.value])));
      needles = [...new Set([...needles, ...prepared.needles])];
      const total = AbortSignal.any([
        signal,
        AbortSignal.timeout(Math.min(call.timeoutMs ?? limits.totalMs, limits.totalMs)),
      ]);
      const first: UpstreamRequest = {
        method: prepared.method,
        url: prepared.url,
        headers: prepared.headers,
        body: prepared.body,
      };
      const answer = await deps.upstream.send(first, {
        signal: total,
        headersMs: limits.headersMs,
        maxRedirects: limits.redirects,
        // A compressed or archived answer hides a value from the redactor: refused when any secret
        // is use-only; passed when the agent may read every secret of the call anyway.
        archives: grants.every(({ grant }) => grant.terms.mode.kind === "read") ? "pass" : "refuse",
        // Same origin only (upstream.ts), and only where every grant may go; otherwise the agent gets the 3xx.
        mayFollow(next, status, prev) {
          const target = prepared.injectQuery(next);
          for (const { grant } of grants) if (!destinationAllows(grant.terms.mode, prev.method, target).ok) return null;
          const toGet = status === 303 || ((status === 301 || status === 302) && prev.method === "POST");
          const headers = toGet
            ? Object.fromEntries(Object.entries(prev.headers).filter(([h]) => h.toLowerCase() !== "content-type"))
            : prev.headers;
          return { method: toGet ? "GET" : prev.method, url: target, headers, body: toGet ? null : prev.body };
        },
      });
      audit.status = answer.status;
      // Everything in the head is text the upstream chose: the URL it redirected to, the status
      // text, header names and values.
      const head = { redacted: false };
      const clean = (text: string): string => {
        const r = redactString(text, needles);
        head.redacted ||= r.redacted;
        return r.text;
      };
      const headers: Array<[string, string]> = [];
      for (const [name, value] of answer.headers) {
        const shownName = clean(name);
        // A header name must stay a token for the agent's HTTP library.
        headers.push([shownName === name ? name : REDACTED_HEADER_NAME, clean(value)]);
      }
      const shownUrl = new URL(answer.url);
      shownUrl.search = "";
      const headText = { statusText: clean(answer.statusText), url: clean(shownUrl.href) };
      send({
        type: "call.head",
        id: call.id,
        status: answer.status,
        statusText: headText.statusText,
        headers,
        redacted: head.redacted,
        url: headText.url,
      });
      const emitNow = async (data: Buffer): Promise<void> => {
        for (let at = 0; at < data.length; at += limits.chunkBytes) {
          // Flow control: the next piece waits for room in the agent's socket, and while it waits
          // the upstream's body is not read (its TCP window closes), so nothing piles up here.
          await roomFor(requester, total);
          const piece = data.subarray(at, at + limits.chunkBytes);
          audit.bytes += piece.length;
          send({ type: "call.chunk", id: call.id, data: piece.toString("base64") });
        }
      };
      // One queue for what the read loop and the redactor's timer pass on: pieces leave in the order
      // they were released, each through the same flow control. A failure (no room in time) reaches
      // the read loop through the queue.
      let sending: Promise<void> = Promise.resolve();
      const emit = (data: Buffer): Promise<void> => (sending = sending.then(() => emitNow(data)));
      // Bytes that waited RELEASE_AFTER_MS are passed on by the redactor's timer (a streamed event is
      // not held back for long), the rest as the window moves.
      const body = createStreamRedactor(needles, {
        holdMs: RELEASE_AFTER_MS,
        onRelease: (data) => void emit(data).catch(() => undefined),
      });
      stopRedactor = () => body.close();
      let received = 0;
      try {
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          received += chunk.length;
          if (received > limits.responseBytes)
            throw new LinkError(
              "response_too_large",
              `The answer is larger than ${limits.responseBytes} bytes; Piper Link stopped reading it.`,
            );
          await emit(body.push(chunk));
        }
      } catch (err) {
        answer.body.destroy();
        if (err instanceof LinkError) throw err;
        if (total.aborted && !signal.aborted)
          throw new LinkError(
            "timeout",
            `The call to ${url.host} took longer than ${Math.min(call.timeoutMs ?? limits.totalMs, limits.totalMs)} ms.`,
            { cause: err },
          );
        throw new LinkError(
          "upstream_unavailable",
          `${url.host} broke off its answer (${err instanceof Error ? err.message : String(err)}).`,
          { cause: err, retryable: true },
        );
      }
      await emit(body.end());
      if (body.split)
        deps.log.warn(
          { conn: requester.connectionId, host: audit.host },
          "the upstream paused in the middle of echoing a secret; its start had been passed on before the rest arrived",
        );
      audit.redacted = head.redacted || body.redacted;
      audit.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      send({
        type: "call.end",
        id: call.id,
        bytes: audit.bytes,
        redacted: audit.redacted,
        durationMs: audit.durationMs,
      });
    } catch (err) {
      audit.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      if (!(err instanceof LinkError)) throw err;
      audit.error = err.code;
      // An upstream's words (a TLS or parser error quoting what it sent) may carry a value.
      if (!signal.aborted)
        send({
          type: "error",
          id: call.id,
          code: err.code === "unauthorized" ? "not_logged_in" : err.code,
          message: redactString(err.message, needles).text,
          retryable: err.retryable,
        });
    } finally {
      stopRedactor();
      deps.log.info(
        { conn: requester.connectionId, clientId: agent.clientId, pid: requester.process?.pid ?? null, call: audit },
        "call",
      );
      for (const { grant } of grants) {
        deps.recordUse({
          grantId: grant.grantId,
          at: deps.now(),
          agentClientId: agent.clientId,
          pid: requester.process?.pid ?? null,
          program: auditProgram(requester.process),
          call: { ...audit, fromCache: grant.fromCache },
        });
      }
    }
  };
}

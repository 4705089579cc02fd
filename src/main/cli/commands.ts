/**
 * The approval-flow commands: secrets, requests, approve/deny, grants, revoke, activity, and the
 * development sign-in. Each goes through the running Link's control channel, which is the only
 * place approvals exist (DESIGN.md section 3).
 */
import readline from "node:readline";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  REQUEST_LIST_LIMIT,
  ScopeSchema,
  SECRET_VALUE_MAX_CHARS,
  withThousands,
  type AuditProgram,
  type GrantView,
  type RequestView,
  type Scope,
} from "../../shared/authority.js";
import type { CallAudit } from "../../shared/calls.js";
import { describeBinding, type GrantBindingKind, type GrantMode, type GrantPolicy } from "../../shared/grant-terms.js";
import { describeMode, describePolicy } from "../../shared/grant-terms-text.js";
import { ControlMethods, redactInstanceId } from "../../shared/control.js";
import { displayText } from "../../shared/display.js";
import { LinkError } from "../../shared/errors.js";
import { inlineCode } from "../../shared/process.js";
import {
  describeAction,
  describeActor,
  describeApproval,
  describeEndReason,
  describeOutcome,
  durationText,
  localDateTime,
  programNotes,
  relativeTime,
  requestStatusLabel,
  type RequestStatusLabel,
} from "../../shared/wording.js";
import { processAlive, requestAnchor } from "../core/authority/local-liveness.js";
import { openBrowser } from "./browser.js";
import { callLink as call, notRunning, withRunningLink } from "./link-access.js";
import { callWithPresence } from "./terminal-proof.js";
import { ExitCode, type Output } from "./output.js";
import {
  modeFromFlags,
  parseDate,
  parseHost,
  parseHours,
  parseMethod,
  parseRule,
  parseTimeZone,
  parseUseCount,
  parseWeekdays,
  policyFromFlags,
  secretHostsFromFlags,
  type PolicyFlags,
} from "./terms-options.js";

export type Runner = (job: (out: Output) => Promise<number>, json: boolean) => Promise<void>;

const UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function isUnit(u: string): u is keyof typeof UNITS {
  return u in UNITS;
}

/**
 * "90s", "30m", "1h", "2d" -> milliseconds, checked against the approval scope's own bounds
 * (ScopeSchema: 1 s to 366 days), so `--for 5x` or `--for 0s` is refused before anything is sent.
 * Throws InvalidArgumentError (exit 2) with a sentence.
 */
export function parseDuration(value: string): number {
  const m = /^(\d+)\s*([smhd])$/.exec(value.trim());
  const unit = m?.[2];
  if (!m?.[1] || unit === undefined || !isUnit(unit))
    throw new InvalidArgumentError("Use a number and a unit: 90s, 30m, 1h or 2d.");
  const durationMs = Number(m[1]) * UNITS[unit];
  if (!ScopeSchema.safeParse({ kind: "duration", durationMs }).success)
    throw new InvalidArgumentError("An approval lasts from 1 second to 366 days.");
  return durationMs;
}

/** `--limit`: a whole number the listActivity schema accepts (1 to 500). */
export function parseLimit(value: string): number {
  const n = value.trim() === "" ? Number.NaN : Number(value);
  if (!ControlMethods.listActivity.params.shape.limit.safeParse(n).success || Number.isNaN(n))
    throw new InvalidArgumentError("Use a whole number from 1 to 500.");
  return n;
}

/** `--before`: a cursor as printed by a previous page ("more: piper-link activity --before ev_…"). */
export function parseCursor(value: string): string {
  const parsed = ControlMethods.listActivity.params.shape.before.safeParse(value);
  if (!parsed.success || parsed.data === undefined)
    throw new InvalidArgumentError(
      "Use the cursor printed after a previous page (it looks like ev_…); dates are not accepted.",
    );
  return parsed.data;
}

/** Recent times as "3 min ago" (with the local time), older ones as the local date-time. */
function when(ms: number): string {
  const rel = relativeTime(ms);
  const abs = localDateTime(ms);
  return rel === abs ? abs : `${rel} (${abs})`;
}

/** "Name (clientId)" or the client ID alone; both are the agent's own words, so escaped (issue 16 item 6). */
function describeAgent(name: string | null, clientId: string): string {
  return name ? `${displayText(name, 80)} (${displayText(clientId, 80)})` : displayText(clientId, 80);
}

/** The verified program of an activity line: "pid 4242 /usr/bin/python3 /srv/a.py in /srv", escaped like every path. */
function describeAuditProgram(p: AuditProgram): string {
  const pid = p.pid === null ? "" : `pid ${p.pid} `;
  return `${pid}${displayText(p.executable ?? "?")}${p.script ? ` ${displayText(p.script, 200)}` : ""} in ${displayText(p.cwd ?? "?")}`;
}

/** A process path is chosen by whoever started the agent: escaped like the agent's own words. */
function describeProcess(p: RequestView["process"]): string {
  if (!p) return "process unknown";
  // The script (or inline code) is part of what an approval binds to, so it is shown with the executable.
  const code = inlineCode(p) ?? p.script;
  const notes = programNotes(p);
  return `pid ${p.pid} ${displayText(p.executable ?? "?")}${code ? ` ${displayText(code, 200)}` : ""} in ${displayText(p.cwd ?? "?")}${notes.length > 0 ? ` — ${displayText(notes.join(" "), 600)}` : ""}`;
}

function describeRequest(r: RequestView): string {
  const who = describeAgent(r.agentName, r.agentClientId);
  return `${r.id}  ${who} wants ${displayText(r.variable.toUpperCase())}  [${describeProcess(r.process)}]  asked ${when(r.createdAt)}${r.reason ? `  — "${displayText(r.reason, 300)}"` : ""}${r.batchId ? `  (asked together: ${r.batchId})` : ""}${r.requesterWaits === false && r.status === "pending" ? "  (does not wait: approve, then run it again)" : ""}`;
}

/**
 * Whether a pending request's process still runs: only answerable for requests made on this
 * machine (`localInstance`, redacted as in status) with a known pid + start time, on Linux; null
 * otherwise. A pid now naming another process (different start time) counts as gone.
 */
async function requesterAlive(r: RequestView, localInstance: string | null): Promise<boolean | null> {
  if (r.status !== "pending" || r.process === null || r.process.startTime === null || process.platform !== "linux")
    return null;
  if (localInstance === null || redactInstanceId(r.instanceId) !== localInstance) return null;
  // A requester that never waits (pyper-sdk) lives on in its terminal session, or until it expires.
  const anchor = requestAnchor(r);
  return anchor === null ? null : processAlive(anchor);
}

/** The STATUS column of `requests --all`: fixed width so the ids line up. */
const STATUS_WIDTH = Math.max(
  ..."pending approved denied expired".split(" ").map((w) => w.length),
  "requester gone".length,
);

function statusColumn(label: RequestStatusLabel): string {
  return label.padEnd(STATUS_WIDTH);
}

function describeScope(g: GrantView): string {
  if (g.scope === "duration")
    return g.expiresAt === null
      ? describeApproval("duration")
      : `${describeApproval("duration", g)}, until ${localDateTime(g.expiresAt)}`;
  if (g.scope === "process") return `while pid ${g.process?.pid ?? "?"} runs`;
  return describeApproval(g.scope);
}

/** A call the Link made, as the audit keeps it: `GET host/path -> 200, 1234 B, 12 ms, redacted`. */
function describeCall(c: CallAudit): string {
  const result = c.status === null ? (c.error ?? "no answer") : `${c.status}${c.error ? ` ${c.error}` : ""}`;
  return `${c.method} ${displayText(c.host, 300)}${displayText(c.path, 300)} -> ${result}, ${c.bytes} B, ${Math.round(c.durationMs)} ms${c.redacted ? ", redacted" : ""}`;
}

/** What a grant binds to, with the program and session it was approved for (escaped: paths are chosen by whoever started the agent). */
function describeGrantBinding(g: GrantView): string {
  const b = g.binding;
  if (b === undefined) return describeBinding("client");
  const code = b.program === null ? null : inlineCode(b.program);
  const program =
    b.program === null
      ? ""
      : ` ${displayText(b.program.executable, 200)}${b.program.script ? ` ${displayText(b.program.script, 200)}` : ""}${code !== null ? ` ${displayText(code, 200)}` : ""}${b.program.cwd ? ` in ${displayText(b.program.cwd, 200)}` : ""}`;
  const session =
    b.kind === "session" && b.sessionId !== null
      ? ` (session ${b.sessionId}${b.sessionLeader ? `, leader pid ${b.sessionLeader.pid}` : ""})`
      : "";
  return `${describeBinding(b.kind)}${b.kind === "client" ? "" : `:${program}`}${session}`;
}

function describeGrant(g: GrantView): string {
  const who = describeAgent(g.agentName, g.agentClientId);
  const state = g.endedAt === null ? "" : `  [ended ${when(g.endedAt)}: ${describeEndReason(g.endReason)}]`;
  const terms = `\n    binds to: ${describeGrantBinding(g)}\n    may: ${displayText(describeMode(g.mode), 500)}\n    limits: ${describePolicy(g.policy)}`;
  return `${g.id}  ${who}  ${displayText(g.variable.toUpperCase())} -> ${displayText(g.secretName)}  ${describeScope(g)}  created ${when(g.createdAt)}, last used ${g.lastUsedAt === null ? "never" : when(g.lastUsedAt)}${state}${terms}`;
}

/** The terms an approval will give, in words, for the line the terminal shows above the PIN prompt. */
function describeTerms(
  scope: Scope,
  terms: { binding?: GrantBindingKind; mode?: GrantMode; policy?: GrantPolicy },
): string {
  const lasting =
    scope.kind === "duration"
      ? `for ${durationText(scope.durationMs)}`
      : scope.kind === "until_revoked"
        ? "until revoked"
        : scope.kind === "process"
          ? "while the process runs"
          : "once";
  return `${lasting}, ${describeBinding(terms.binding ?? (scope.kind === "process" ? "process" : "program"))}, ${describeMode(terms.mode)}, limits: ${describePolicy(terms.policy ?? null)}`;
}

/** The policy flags shared by `approve` and `grants limit`. */
function addPolicyOptions(cmd: Command): Command {
  return cmd
    .option("--hours <from-to>", "allowed hours in the time zone, e.g. 9-17", parseHours)
    .option("--weekdays <days>", "allowed weekdays, e.g. mon-fri or mon,wed,fri", parseWeekdays)
    .option("--tz <zone>", "IANA time zone for --hours, --weekdays and --ends (default: this machine's)", parseTimeZone)
    .option("--max-per-hour <n>", "at most N uses per hour", parseUseCount)
    .option("--max-per-day <n>", "at most N uses per day", parseUseCount)
    .option("--ends <date>", "the grant stops serving after this day (YYYY-MM-DD)", parseDate);
}

/** Reads a secret value from stdin (piped) or a hidden prompt (terminal); never from argv. */
async function readSecretValue(name: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks)
      .toString("utf8")
      .replace(/\r?\n$/, "");
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const muted = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(`Value for ${name} (hidden): `);
  muted._writeToOutput = () => undefined;
  const value = await new Promise<string>((resolve) => rl.question("", resolve));
  rl.close();
  process.stderr.write("\n");
  return value;
}

export function addApprovalCommands(program: Command, profile: () => string, run: Runner): void {
  const secrets = program.command("secrets").description("secrets by name (values are write-only)");
  secrets
    .command("set")
    .description("add or replace a secret; the value is read from stdin or a hidden prompt, never from arguments")
    .argument("<name>", "secret name, e.g. OPENAI_API_KEY")
    .option(
      "--host <host>",
      "a host the Link may send it to, with :port unless it is 443 (repeat for more); without: any host a grant allows",
      parseHost,
    )
    .option("--json", "print JSON")
    .action(async (name: string, o: { host?: string[]; json?: boolean }) => {
      await run(async (out) => {
        const hosts = o.host === undefined ? undefined : secretHostsFromFlags(o.host);
        const value = await readSecretValue(name);
        // Checked here: a value over the limit would otherwise meet the control channel's frame limit
        // first and be refused in a frame's words.
        if (value.length === 0) throw new LinkError("bad_request", "The value is empty; nothing stored.");
        if (value.length > SECRET_VALUE_MAX_CHARS) {
          throw new LinkError(
            "bad_request",
            `The value for ${name} has ${withThousands(value.length)} characters; a secret's value can be at most ${withThousands(SECRET_VALUE_MAX_CHARS)}. Nothing was stored.`,
          );
        }
        const s = await callWithPresence(
          profile(),
          "setSecret",
          { name, value, ...(hosts !== undefined ? { hosts } : {}) },
          `Allowing ${name} to be sent to ${(hosts ?? []).join(", ")} needs you.`,
        );
        out.result(s, `Stored ${s.name}.${s.hosts === null ? "" : ` It may only be sent to ${s.hosts.join(", ")}.`}`);
        return ExitCode.ok;
      }, o.json === true);
    });
  secrets
    .command("hosts")
    .description("set the hosts a secret may ever be sent to by Piper Link's calls (reads are not affected)")
    .argument("<name>")
    .option("--host <host>", "a host it may be sent to, with :port unless it is 443 (repeat for more)", parseHost)
    .option("--any", "no host list of its own: any host a grant allows")
    .option("--json", "print JSON")
    .action(async (name: string, o: { host?: string[]; any?: boolean; json?: boolean }) => {
      await run(async (out) => {
        if ((o.any === true) === (o.host !== undefined))
          throw new LinkError("bad_request", "Give either --host (one or more) or --any.");
        const hosts = o.any === true ? null : secretHostsFromFlags(o.host ?? []);
        const s = await callWithPresence(
          profile(),
          "setSecretHosts",
          { name, hosts },
          `Allowing ${name} to be sent to ${hosts === null ? "any host" : hosts.join(", ")} needs you.`,
        );
        out.result(
          s,
          s.hosts === null
            ? `${s.name} may be sent to any host a grant allows.`
            : `${s.name} may only be sent to ${s.hosts.join(", ")}.`,
        );
        return ExitCode.ok;
      }, o.json === true);
    });
  secrets
    .command("list")
    .description("list secret names and dates (never values)")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listSecrets", {});
        out.result(
          list,
          list.length === 0
            ? "No secrets yet. Add one with `piper-link secrets set NAME`."
            : list.map(
                (s) =>
                  `${s.name}  updated ${when(s.updatedAt)}${s.hosts === null ? "" : `  only to ${s.hosts.join(", ")}`}`,
              ),
        );
        return ExitCode.ok;
      }, o.json === true);
    });
  secrets
    .command("rm")
    .description("delete a secret; grants that use it end")
    .argument("<name>")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      await run(async (out) => {
        await call(profile(), "deleteSecret", { name });
        out.result({ deleted: true, name }, `Deleted ${name}.`);
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("requests")
    .description("pending requests from agents, newest first")
    .option("--all", "include decided and expired requests, with a status column")
    .option("--json", "print JSON")
    .action(async (o: { all?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listRequests", { status: o.all ? "all" : "pending" });
        if (list.length >= REQUEST_LIST_LIMIT) out.warn(`Showing the newest ${REQUEST_LIST_LIMIT}; there are more.`);
        if (o.all !== true) {
          out.result(list, list.length === 0 ? "No pending requests." : list.map(describeRequest));
          return ExitCode.ok;
        }
        const local = out.json ? null : (await call(profile(), "status", {})).instanceIdRedacted;
        const lines = [`${"STATUS".padEnd(STATUS_WIDTH)}  REQUEST`];
        for (const r of list)
          lines.push(`${statusColumn(requestStatusLabel(r, await requesterAlive(r, local)))}  ${describeRequest(r)}`);
        out.result(list, list.length === 0 ? "No requests yet." : lines);
        return ExitCode.ok;
      }, o.json === true);
    });

  const approve = program
    .command("approve")
    .description(
      "approve pending requests (default scope: once); several IDs (one card's requests) get the same terms, each its own grant",
    )
    .argument("<request-id...>")
    .addOption(new Option("--once", "this one request only").conflicts(["for", "untilRevoked", "whileProcessRuns"]))
    .addOption(
      new Option("--for <duration>", "for a while: 90s, 30m, 1h, 2d")
        .argParser(parseDuration)
        .conflicts(["untilRevoked", "whileProcessRuns"]),
    )
    .addOption(new Option("--until-revoked", "until you revoke it").conflicts(["whileProcessRuns"]))
    .option("--while-process-runs", "for the life of the requesting process")
    .addOption(
      new Option(
        "--bind <who>",
        "who may use it: program = this executable, script and folder (default); session = that program in this terminal session; process = this process only; any = any program that says it is this agent (weakest)",
      )
        .choices(["program", "session", "process", "any"])
        .conflicts(["whileProcessRuns"]),
    )
    .option("--secret <name>", "which secret to give (default: the one named like the variable); one request only")
    .option("--use-only", "the agent may only use the secret through Piper Link's calls (to --host), never read it")
    .option(
      "--host <host>",
      "with --use-only: a host it may be sent to, with :port unless it is 443 (e.g. api.example.com, localhost:8443); repeat for more",
      parseHost,
    )
    .option("--rule <rule>", "with --use-only: 'METHOD /path*' allowed on every --host (repeat for more)", parseRule)
    .option(
      "--method <method>",
      "with --use-only: the only HTTP methods allowed on every --host, e.g. GET for read-only use of an API that also takes writes (repeat for more)",
      parseMethod,
    );
  addPolicyOptions(approve)
    .option("--json", "print JSON")
    .action(
      async (
        requestIds: string[],
        o: PolicyFlags & {
          once?: boolean;
          for?: number;
          untilRevoked?: boolean;
          whileProcessRuns?: boolean;
          bind?: "program" | "session" | "process" | "any";
          secret?: string;
          useOnly?: boolean;
          host?: string[];
          rule?: Array<{ method?: string; path: string }>;
          method?: string[];
          json?: boolean;
        },
      ) => {
        await run(async (out) => {
          const mode = modeFromFlags(o);
          const policy = policyFromFlags(o);
          const scope: Scope =
            o.for !== undefined
              ? { kind: "duration", durationMs: o.for }
              : o.untilRevoked
                ? { kind: "until_revoked" }
                : o.whileProcessRuns
                  ? { kind: "process" }
                  : { kind: "once" };
          const binding: GrantBindingKind | undefined =
            o.bind === undefined ? undefined : o.bind === "any" ? "client" : o.bind;
          if (requestIds.length > 1 && o.secret !== undefined)
            throw new LinkError(
              "bad_request",
              "--secret names the secret of one request; approve the others separately (each gets the secret named like its variable).",
            );
          if (binding === "client")
            out.warn(
              "Warning: any program that calls itself this agent can now use this secret, not just the one you saw.",
            );
          const terms = {
            ...(binding ? { binding } : {}),
            ...(mode.kind === "use" ? { mode } : {}),
            ...(policy !== null ? { policy } : {}),
          };
          const [only] = requestIds;
          // The prompt names what the PIN will approve: who asks, for what, and the terms.
          const pending = await call(profile(), "listRequests", { status: "pending" }).catch(() => []);
          const asked = requestIds.map((id) => {
            const r = pending.find((p) => p.id === id);
            return `  ${r === undefined ? id : describeRequest(r)}`;
          });
          const what = [
            `Approving ${requestIds.length === 1 ? "this request" : `these ${requestIds.length} requests`}:`,
            ...asked,
            `with: ${describeTerms(scope, terms)}`,
          ].join("\n");
          if (requestIds.length === 1 && only !== undefined) {
            const grant = await callWithPresence(
              profile(),
              "approveRequest",
              { requestId: only, scope, ...terms, ...(o.secret ? { secretName: o.secret } : {}) },
              what,
            );
            out.result(grant, `Approved: ${describeGrant(grant)}`);
            return ExitCode.ok;
          }
          // Several: one set of terms, each request its own grant; one failing leaves the others approved.
          const { results } = await callWithPresence(
            profile(),
            "approveRequests",
            { items: requestIds.map((requestId) => ({ requestId })), scope, ...terms },
            what,
          );
          out.result(
            results,
            results.map((r) =>
              r.ok
                ? `Approved: ${describeGrant(r.grant)}`
                : `Not approved ${r.requestId}: ${r.error.message} (${r.error.code})`,
            ),
          );
          return results.every((r) => r.ok) ? ExitCode.ok : ExitCode.failure;
        }, o.json === true);
      },
    );

  program
    .command("deny")
    .description("deny a pending request")
    .argument("<request-id>")
    .option("--json", "print JSON")
    .action(async (requestId: string, o: { json?: boolean }) => {
      await run(async (out) => {
        const r = await call(profile(), "denyRequest", { requestId });
        out.result(r, `Denied ${r.id}.`);
        return ExitCode.ok;
      }, o.json === true);
    });

  const grants = program
    .command("grants")
    .description("grants in force (agent, variable, secret, scope, what they bind to, what they allow, limits)")
    .option("--all", "include ended grants")
    .option("--json", "print JSON")
    .action(async (o: { all?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listGrants", { all: o.all === true });
        out.result(list, list.length === 0 ? "No grants." : list.map(describeGrant));
        return ExitCode.ok;
      }, o.json === true);
    });
  addPolicyOptions(
    grants
      .command("limit")
      .description("set a grant's limits (replacing the old ones), or remove them with --none")
      .argument("<grant-id>"),
  )
    .option("--none", "remove every limit")
    .option("--json", "print JSON")
    .action(async (grantId: string, o: PolicyFlags & { none?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const policy = policyFromFlags(o);
        if (o.none === true && policy !== null)
          throw new LinkError("bad_request", "--none removes every limit; give it alone.");
        if (o.none !== true && policy === null)
          throw new LinkError(
            "bad_request",
            "Give at least one limit (--hours, --weekdays, --max-per-hour, --max-per-day, --ends), or --none.",
          );
        const g = await callWithPresence(
          profile(),
          "updateGrantPolicy",
          { grantId, policy },
          `Changing the limits of ${grantId} needs you.`,
        );
        out.result(g, `Limits of ${g.id}: ${describePolicy(g.policy)}.`);
        return ExitCode.ok;
      }, o.json === true);
    });
  grants
    .command("review")
    .description(
      "grants approved before approvals needed your PIN (after an upgrade), 'any program' ones first: keep them with `grants keep`, end them with `revoke`",
    )
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listLegacyGrants", {});
        out.result(
          list,
          list.length === 0
            ? "Nothing to review: every grant was approved with a proof."
            : [
                "Approved before approvals needed your PIN (an agent could have approved these itself):",
                ...list.map(describeGrant),
              ],
        );
        return ExitCode.ok;
      }, o.json === true);
    });
  grants
    .command("keep")
    .description("keep grants listed by `grants review` (asks your PIN on this terminal)")
    .argument("<grant-id...>")
    .option("--json", "print JSON")
    .action(async (grantIds: string[], o: { json?: boolean }) => {
      await run(async (out) => {
        const r = await callWithPresence(
          profile(),
          "keepLegacyGrants",
          { grantIds },
          `Keeping ${grantIds.length} grant(s) approved before approvals needed your PIN.`,
        );
        out.result(r, `Kept ${r.kept} grant(s).`);
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("revoke")
    .description("revoke a grant; the agent's next call is pending again")
    .argument("<grant-id>")
    .option("--json", "print JSON")
    .action(async (grantId: string, o: { json?: boolean }) => {
      await run(async (out) => {
        const g = await call(profile(), "revokeGrant", { grantId });
        out.result(g, `Revoked ${g.id}.`);
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("activity")
    .description("the audit log, newest first (never secret values)")
    .option("--limit <n>", "events per page (1 to 500)", parseLimit, 50)
    .option("--before <cursor>", "continue from a previous page's cursor", parseCursor)
    .option("--agent <clientId>", "only this agent")
    .option("--variable <name>", "only this variable")
    .option("--secret <name>", "only this secret")
    .option("--host <host>", "only calls the Link made to this host (host or host:port)")
    .option("--json", "print JSON")
    .action(
      async (o: {
        limit: number;
        before?: string;
        agent?: string;
        variable?: string;
        secret?: string;
        host?: string;
        json?: boolean;
      }) => {
        await run(async (out) => {
          const page = await call(profile(), "listActivity", {
            limit: o.limit,
            ...(o.before ? { before: o.before } : {}),
            ...(o.agent ? { agent: o.agent } : {}),
            ...(o.variable ? { variable: o.variable } : {}),
            ...(o.secret ? { secret: o.secret } : {}),
            ...(o.host ? { host: o.host } : {}),
          });
          // Timed approvals read "approved for 1 hour": their length is the grant's (one extra call, human output only).
          // …and deliveries under a use-only grant read "Used in a call", not "value given to the agent".
          const needsGrants = page.events.some(
            (e) => (e.action === "request.approved" && e.outcome === "until") || e.action === "secret.delivered",
          );
          const grants = out.json || !needsGrants ? [] : await call(profile(), "listGrants", { all: true });
          const byId = new Map(grants.map((g) => [g.id, g]));
          const lines = page.events.map((e) => {
            const agentText = e.agentClientId === null ? "" : `  agent ${displayText(e.agentClientId, 80)}`;
            const variable = e.variable === null ? "" : `  ${displayText(e.variable.toUpperCase())}`;
            return `${when(e.at)}  ${describeAction(e.action, e.grantId === null ? undefined : byId.get(e.grantId))}${variable}${agentText}: ${describeOutcome(e, byId)}${e.secretName ? `  (secret ${displayText(e.secretName)})` : ""}${e.call ? `  ${describeCall(e.call)}` : ""}${e.program ? `  program ${describeAuditProgram(e.program)}` : ""}  by ${displayText(describeActor(e.actor), 80)}`;
          });
          if (page.nextCursor) lines.push(`more: piper-link activity --before ${page.nextCursor}`);
          out.result(page, lines.length === 0 ? "No activity yet." : lines);
          return ExitCode.ok;
        }, o.json === true);
      },
    );
}

export function addDevSignIn(dev: Command, profile: () => string, run: Runner): void {
  dev
    .command("sign-in")
    .description("register this machine with the embedded authority and store its instance ID (no browser needed)")
    .option("--name <name>", "a name for this machine")
    .option("--json", "print JSON")
    .action(async (o: { name?: string; json?: boolean }) => {
      await run(async (out) => {
        const s = await call(profile(), "devSignIn", o.name ? { name: o.name } : {});
        out.result(s, `Signed in; this machine is instance ${s.instanceIdRedacted ?? ""}.`);
        return ExitCode.ok;
      }, o.json === true);
    });
}

export function addUiCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("ui")
    .description(
      "open the Piper Link window in your browser (headless mode), or print its address (it works once, for 60 seconds)",
    )
    .option("--print", "print the address instead of opening a browser (single use, valid for 60 seconds)")
    .option("--json", "print {url, expiresAt} as JSON (the address works once, for 60 seconds)")
    .action(async (o: { print?: boolean; json?: boolean }) => {
      await run(async (out) => {
        // A single-use, 60-second code, never the control token: the opener's argv is visible to
        // every local user in `ps` (issue 16 item 8).
        const login = await withRunningLink(profile(), (c) => c.call("uiLoginCode", {}));
        if (login === null) throw notRunning(profile());
        const { url, expiresAt } = login;
        const opened = o.print !== true && o.json !== true && openBrowser(url);
        out.result(
          { url, expiresAt, opened },
          opened
            ? `Opening Piper Link in your browser.\nIf it does not open, this address works once within 60 seconds:\n${url}`
            : `Open this address in a browser on this machine (it works once, within 60 seconds):\n${url}`,
        );
        return ExitCode.ok;
      }, o.json === true);
    });
}

/**
 * The approval-flow commands: secrets, requests, approve/deny, grants, revoke, activity, and the
 * development sign-in. Each goes through the running Link's control channel, which is the only
 * place approvals exist (DESIGN.md section 3).
 */
import { spawn } from "node:child_process";
import readline from "node:readline";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { GrantView, RequestView, Scope } from "../../shared/authority.js";
import type { GrantBindingKind } from "../../shared/grant-terms.js";
import { uiAddress } from "../../shared/control.js";
import { displayText } from "../../shared/display.js";
import { LinkError } from "../../shared/errors.js";
import { callLink as call, notRunning, withRunningLink } from "./link-access.js";
import { ExitCode, type Output } from "./output.js";

export type Runner = (job: (out: Output) => Promise<number>, json: boolean) => Promise<void>;

/** "90s", "30m", "1h", "2d" -> milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim());
  if (!m?.[1] || !m[2]) throw new InvalidArgumentError("use a number and a unit: 90s, 30m, 1h, 2d.");
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** "Name (clientId)" or the client ID alone; both are the agent's own words, so escaped (issue 16 item 6). */
function describeAgent(name: string | null, clientId: string): string {
  return name ? `${displayText(name, 80)} (${displayText(clientId, 80)})` : displayText(clientId, 80);
}

/** A process path is chosen by whoever started the agent: escaped like the agent's own words. */
function describeProcess(p: RequestView["process"]): string {
  return p ? `pid ${p.pid} ${displayText(p.executable ?? "?")} in ${displayText(p.cwd ?? "?")}` : "process unknown";
}

function describeRequest(r: RequestView): string {
  const who = describeAgent(r.agentName, r.agentClientId);
  return `${r.id}  ${who} wants ${displayText(r.variable.toUpperCase())}  [${describeProcess(r.process)}]  ${ago(r.createdAt)}${r.reason ? `  — "${displayText(r.reason, 300)}"` : ""}${r.batchId ? `  (asked together: ${r.batchId})` : ""}`;
}

function describeScope(g: GrantView): string {
  if (g.scope === "duration") return `until ${new Date(g.expiresAt ?? 0).toISOString()}`;
  if (g.scope === "process") return `while pid ${g.process?.pid ?? "?"} runs`;
  if (g.scope === "once") return "once";
  return "until revoked";
}

function describeGrant(g: GrantView): string {
  const who = describeAgent(g.agentName, g.agentClientId);
  const state = g.endedAt === null ? "" : `  [ended: ${g.endReason ?? "?"}]`;
  return `${g.id}  ${who}  ${displayText(g.variable.toUpperCase())} -> ${displayText(g.secretName)}  ${describeScope(g)}  created ${ago(g.createdAt)}, last used ${g.lastUsedAt === null ? "never" : ago(g.lastUsedAt)}${state}`;
}

/** Reads a secret value from stdin (piped) or a hidden prompt (terminal); never from argv. */
async function readSecretValue(name: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
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
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      await run(async (out) => {
        const value = await readSecretValue(name);
        if (value.length === 0) throw new LinkError("bad_request", "The value is empty; nothing stored.");
        const s = await call(profile(), "setSecret", { name, value });
        out.result(s, `Stored ${s.name}.`);
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
        out.result(list, list.length === 0 ? "No secrets yet. Add one with `piper-link secrets set NAME`." : list.map((s) => `${s.name}  updated ${ago(s.updatedAt)}`));
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
    .option("--all", "include decided and expired requests")
    .option("--json", "print JSON")
    .action(async (o: { all?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listRequests", { status: o.all ? "all" : "pending" });
        out.result(list, list.length === 0 ? "No pending requests." : list.map(describeRequest));
        return ExitCode.ok;
      }, o.json === true);
    });

  program
    .command("approve")
    .description("approve pending requests (default scope: once); several IDs (one card's requests) get the same terms, each its own grant")
    .argument("<request-id...>")
    .addOption(new Option("--once", "this one request only").conflicts(["for", "untilRevoked", "whileProcessRuns"]))
    .addOption(new Option("--for <duration>", "for a while: 90s, 30m, 1h, 2d").argParser(parseDuration).conflicts(["untilRevoked", "whileProcessRuns"]))
    .addOption(new Option("--until-revoked", "until you revoke it").conflicts(["whileProcessRuns"]))
    .option("--while-process-runs", "for the life of the requesting process")
    .addOption(
      new Option("--bind <who>", "who may use it: program = this executable, script and folder (default); session = that program in this terminal session; process = this process only; any = any program that says it is this agent (weakest)")
        .choices(["program", "session", "process", "any"])
        .conflicts(["whileProcessRuns"]),
    )
    .option("--secret <name>", "which secret to give (default: the one named like the variable); one request only")
    .option("--json", "print JSON")
    .action(async (requestIds: string[], o: { once?: boolean; for?: number; untilRevoked?: boolean; whileProcessRuns?: boolean; bind?: "program" | "session" | "process" | "any"; secret?: string; json?: boolean }) => {
      await run(async (out) => {
        const scope: Scope =
          o.for !== undefined ? { kind: "duration", durationMs: o.for } : o.untilRevoked ? { kind: "until_revoked" } : o.whileProcessRuns ? { kind: "process" } : { kind: "once" };
        const binding: GrantBindingKind | undefined = o.bind === undefined ? undefined : o.bind === "any" ? "client" : o.bind;
        if (requestIds.length > 1 && o.secret !== undefined) throw new LinkError("bad_request", "--secret names the secret of one request; approve the others separately (each gets the secret named like its variable).");
        if (binding === "client") out.warn("Warning: any program that calls itself this agent can now use this secret, not just the one you saw.");
        const [only] = requestIds;
        if (requestIds.length === 1 && only !== undefined) {
          const grant = await call(profile(), "approveRequest", { requestId: only, scope, ...(binding ? { binding } : {}), ...(o.secret ? { secretName: o.secret } : {}) });
          out.result(grant, `Approved: ${describeGrant(grant)}`);
          return ExitCode.ok;
        }
        // Several: one set of terms, each request its own grant; one failing leaves the others approved.
        const { results } = await call(profile(), "approveRequests", { items: requestIds.map((requestId) => ({ requestId })), scope, ...(binding ? { binding } : {}) });
        out.result(
          results,
          results.map((r) => (r.ok ? `Approved: ${describeGrant(r.grant)}` : `Not approved ${r.requestId}: ${r.error.message} (${r.error.code})`)),
        );
        return results.every((r) => r.ok) ? ExitCode.ok : ExitCode.failure;
      }, o.json === true);
    });

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

  program
    .command("grants")
    .description("grants in force (agent, variable, secret, scope)")
    .option("--all", "include ended grants")
    .option("--json", "print JSON")
    .action(async (o: { all?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const list = await call(profile(), "listGrants", { all: o.all === true });
        out.result(list, list.length === 0 ? "No grants." : list.map(describeGrant));
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
    .option("--limit <n>", "events per page", (v) => Number(v), 50)
    .option("--before <cursor>", "continue from a previous page's cursor")
    .option("--agent <clientId>", "only this agent")
    .option("--variable <name>", "only this variable")
    .option("--json", "print JSON")
    .action(async (o: { limit: number; before?: string; agent?: string; variable?: string; json?: boolean }) => {
      await run(async (out) => {
        const page = await call(profile(), "listActivity", {
          limit: o.limit,
          ...(o.before ? { before: o.before } : {}),
          ...(o.agent ? { agent: o.agent } : {}),
          ...(o.variable ? { variable: o.variable } : {}),
        });
        const lines = page.events.map((e) => `${new Date(e.at).toISOString()}  ${displayText(e.actor, 80)}  ${e.action}  ${displayText(e.variable ?? "")}  ${e.outcome}${e.secretName ? `  (${displayText(e.secretName)})` : ""}`);
        if (page.nextCursor) lines.push(`more: piper-link activity --before ${page.nextCursor}`);
        out.result(page, lines.length === 0 ? "No activity yet." : lines);
        return ExitCode.ok;
      }, o.json === true);
    });
}

/** Opens `url` in the system browser; false when there is no way to (then the URL is printed). */
function openBrowser(url: string): boolean {
  // Over SSH or on a server there is no browser here to open; the caller prints the address instead.
  if (process.platform === "linux" && !process.env["DISPLAY"] && !process.env["WAYLAND_DISPLAY"]) return false;
  const [cmd, args] = process.platform === "darwin" ? ["open", [url]] : process.platform === "win32" ? ["cmd", ["/c", "start", "", url]] : ["xdg-open", [url]];
  try {
    const child = spawn(cmd, args, { stdio: "ignore", detached: true });
    child.on("error", () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

export function addLoginCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("login")
    .description("sign in once: in your browser, or with --device by entering a code on any device")
    .option("--device", "show a code to enter on another device (SSH, no browser)")
    .option("--no-browser", "print the sign-in address instead of opening a browser")
    .option("--json", "print the final status as JSON")
    .action(async (o: { device?: boolean; browser: boolean; json?: boolean }) => {
      await run(async (out) => {
        const start = await call(profile(), "loginStart", { device: o.device === true });
        if (start.kind === "device") {
          process.stderr.write(`To sign in, open ${start.verificationUri ?? ""} and enter the code ${start.userCode ?? ""}\n(or open ${start.verificationUriComplete ?? ""})\nWaiting…\n`);
        } else {
          const opened = o.browser && openBrowser(start.authorizeUrl ?? "");
          process.stderr.write(`${opened ? "Opening your browser to sign in." : "Open this address to sign in:"}\n${start.authorizeUrl ?? ""}\nWaiting…\n`);
        }
        const status = await call(profile(), "loginWait", { loginId: start.loginId, timeoutMs: 10 * 60_000 });
        out.result(status, `Signed in. This machine is instance ${status.instanceIdRedacted ?? ""}; agents can find it now.`);
        return ExitCode.ok;
      }, o.json === true);
    });
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
    .description("open the Piper Link window in your browser (headless mode), or print its address")
    .option("--print", "print the address instead of opening a browser")
    .option("--json", "print {url} as JSON")
    .action(async (o: { print?: boolean; json?: boolean }) => {
      await run(async (out) => {
        const url = await withRunningLink(profile(), async (c) => {
          const status = await c.call("status", {});
          return uiAddress(status.port, c.token);
        });
        if (url === null) throw notRunning(profile());
        const opened = o.print !== true && o.json !== true && openBrowser(url);
        out.result({ url, opened }, opened ? `Opening Piper Link in your browser.\n${url}` : `Open this address in a browser on this machine:\n${url}`);
        return ExitCode.ok;
      }, o.json === true);
    });
}

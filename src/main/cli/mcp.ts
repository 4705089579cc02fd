/**
 * `piper-link mcp`: the command's definition. The MCP server (mcp-server.ts, with the official
 * `@modelcontextprotocol/sdk`) is loaded only when the command runs: the daemon and every other
 * command share this module graph, and the SDK with its JSON-schema libraries costs them ~13 MB.
 * `--print-config` prints the configuration an MCP client needs to start this checkout's server by
 * absolute path (launch.ts), instead of `npx piper-link`, which outside the clone asks the public
 * registry for whatever package holds that name.
 */
import { type Command, InvalidArgumentError } from "commander";
import { LinkError } from "../../shared/errors.js";
import type { Runner } from "./commands.js";
import { describeMcpConfig, type McpClientKind, mcpConfig, parseMcpClient } from "./launch.js";
import type { McpOptions } from "./mcp-server.js";
import { AGENT_DEFAULTS } from "../../shared/defaults.js";
import { ExitCode } from "./output.js";

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 24 * 3600_000)
    throw new InvalidArgumentError("must be a whole number of milliseconds up to 24 hours.");
  return n;
}

interface McpCommandOptions {
  clientId: string;
  approvalTimeout: number;
  printConfig?: boolean;
  client?: McpClientKind;
  json?: boolean;
}

/** Registers `piper-link mcp`; `profile` is the global `--profile`. */
export function addMcpCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("mcp")
    .description(
      "serve MCP on stdio for coding agents: list usable secrets, ask for access, check a grant, see the status, and make HTTPS requests with secrets injected by name (never a value)",
    )
    .option("--client-id <id>", "the agent client ID the person sees in approvals", "piper-link-mcp")
    .option(
      "--approval-timeout <ms>",
      "how long a request waits for the person's approval",
      parseTimeout,
      AGENT_DEFAULTS.approvalWaitMs,
    )
    .option(
      "--print-config",
      "print the configuration that starts this server from any folder (absolute paths, no npx), then exit",
    )
    .option(
      "--client <client>",
      "with --print-config: claude (a `claude mcp add` line), cursor or generic (the mcpServers JSON)",
      parseMcpClient,
    )
    .option("--json", "with --print-config: print it as one JSON document")
    .action(async (o: McpCommandOptions) => {
      if (o.printConfig !== true) {
        if (o.client !== undefined || o.json === true) {
          await run(
            () =>
              Promise.reject(
                new LinkError(
                  "bad_request",
                  "--client and --json go with --print-config (`piper-link mcp --print-config --client claude`).",
                ),
              ),
            o.json === true,
          );
          return;
        }
        const serve: McpOptions = { clientId: o.clientId, approvalTimeout: o.approvalTimeout, profile: profile() };
        await run(async () => (await import("./mcp-server.js")).serveMcp(serve), false);
        return;
      }
      await run((out) => {
        const config = mcpConfig(o.client ?? "generic", profile(), o);
        const human = describeMcpConfig(config);
        if (!out.json) out.warn(human.hint);
        out.result(config, human.text);
        return Promise.resolve(ExitCode.ok);
      }, o.json === true);
    });
}

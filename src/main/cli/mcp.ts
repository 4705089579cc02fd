/**
 * `piper-link mcp`: the command's definition. The MCP server (mcp-server.ts, with the official
 * `@modelcontextprotocol/sdk`) is loaded only when the command runs: the daemon and every other
 * command share this module graph, and the SDK with its JSON-schema libraries costs them ~13 MB.
 */
import { type Command, InvalidArgumentError } from "commander";
import type { Runner } from "./commands.js";
import type { McpOptions } from "./mcp-server.js";
import { AGENT_DEFAULTS } from "../../shared/defaults.js";

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 24 * 3600_000) throw new InvalidArgumentError("must be a whole number of milliseconds up to 24 hours.");
  return n;
}

/** Registers `piper-link mcp`; `profile()` is the global `--profile` (or PIPER_LINK_PROFILE). */
export function addMcpCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("mcp")
    .description("serve MCP on stdio for coding agents: list usable secrets and make HTTPS requests with secrets injected by name")
    .option("--client-id <id>", "the agent client ID the person sees in approvals", "piper-link-mcp")
    .option("--approval-timeout <ms>", "how long a request waits for the person's approval", parseTimeout, AGENT_DEFAULTS.approvalWaitMs)
    .action(async (o: Omit<McpOptions, "profile">) => {
      await run(async () => (await import("./mcp-server.js")).serveMcp({ ...o, profile: profile() }), false);
    });
}


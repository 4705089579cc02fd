// How an MCP client starts `piper-link mcp` from outside the clone, and whom the Link names when it
// does. `mcp --print-config` and `install-cli` are run from a temporary folder (where `npx
// piper-link` would ask the public registry), and the printed command is started by the MCP SDK's
// own client. Then real process chains: a stand-in MCP client (its own script) starts the server
// through `sh -c`, through a shell line that runs a shebang script as npx does, through the real
// `npx`, and through a shell line that does more than start it; the pending request names the
// stand-in client in the first three and the shell in the last.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, readlinkSync, realpathSync, symlinkSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { z } from "zod";
import { RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { INLINE_SCRIPT } from "../src/shared/process.js";
import { plainCommandWords, THROUGH_NPX } from "../src/main/core/process/acting-for.js";
import { BIN, cli, cliJson, cliJsonAsync, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const Requests = z.array(RequestViewSchema);
const McpConfigSchema = z.object({
  client: z.enum(["claude", "cursor", "generic"]),
  command: z.string(),
  args: z.array(z.string()),
  mcpServers: z.object({ "piper-link": z.object({ command: z.string(), args: z.array(z.string()) }) }),
  claudeArgv: z.array(z.string()).optional(),
});
const InstallSchema = z.object({
  file: z.string(),
  action: z.enum(["installed", "removed", "absent"]),
  command: z.string(),
  script: z.string(),
  onPath: z.boolean(),
  shadowedBy: z.string().nullable(),
});

function envOf(e: CliEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.env)) if (v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/** Runs the CLI by the given command (BIN by default) in `cwd`; its exit code and output. */
function runIn(
  cwd: string,
  env: Record<string, string>,
  argv: string[],
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0] ?? "", argv.slice(1), { cwd, env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("plain shell lines (what a launcher's `sh -c` may hold)", () => {
  it("reads one plain command with its quotes, and refuses anything the shell would do more with", () => {
    assert.deepEqual(plainCommandWords("'piper-link' mcp"), ["piper-link", "mcp"]);
    assert.deepEqual(plainCommandWords('exec node "/a b/bin/piper-link.js" mcp --client-id=x'), [
      "node",
      "/a b/bin/piper-link.js",
      "mcp",
      "--client-id=x",
    ]);
    for (const line of [
      "piper-link mcp; curl x",
      "piper-link mcp && true",
      "piper-link mcp | tee",
      "piper-link mcp > /tmp/x",
      "X=1 piper-link mcp",
      "piper-link $ARGS",
      'piper-link "$HOME"',
      "piper-link `id`",
      "~/piper-link mcp",
      "piper-link *",
      "piper-link 'mcp",
      "piper-link\\ mcp",
      "",
      "exec",
    ]) {
      assert.equal(plainCommandWords(line), null, line);
    }
  });
});

describe("mcp --print-config and install-cli, from a folder outside the clone", () => {
  it("prints a config of absolute paths that an MCP client starts from anywhere: initialize, tools/list", async () => {
    const e = await newEnv();
    const outside = await tempDir("piper-mcp-outside-");
    const env = envOf(e);
    const r = runIn(outside, env, [process.execPath, BIN, "mcp", "--print-config", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const config = McpConfigSchema.parse(JSON.parse(r.stdout));
    assert.equal(config.command, process.execPath);
    assert.ok(path.isAbsolute(config.command) && path.isAbsolute(config.args[0] ?? ""), "absolute paths only");
    assert.equal(realpathSync(config.args[0] ?? ""), realpathSync(BIN), "this checkout's bin");
    // The profile in force (tests run under their own) is part of the command: the client's environment will not carry it.
    assert.deepEqual(config.args.slice(1), ["--profile", e.profile, "mcp"]);
    assert.deepEqual(config.mcpServers["piper-link"], { command: config.command, args: config.args });
    assert.ok(!r.stdout.includes("npx"), "nothing asks npm for a package");

    // The MCP SDK's client starts exactly that, from the outside folder, without PIPER_LINK_PROFILE.
    const clientEnv = { ...env };
    delete clientEnv["PIPER_LINK_PROFILE"];
    const mcp = new Client({ name: "piper-link-config-test", version: "0" });
    await mcp.connect(
      new StdioClientTransport({
        command: config.command,
        args: config.args,
        cwd: outside,
        env: clientEnv,
        stderr: "ignore",
      }),
    );
    try {
      assert.equal(mcp.getServerVersion()?.name, "piper-link");
      const { tools } = await mcp.listTools();
      assert.ok(tools.some((t) => t.name === "http_request") && tools.some((t) => t.name === "list_secrets"));
    } finally {
      await mcp.close();
    }

    // Claude Code's form is the same command after `claude mcp add … --`; the human form is that line.
    const claude = McpConfigSchema.parse(
      JSON.parse(
        runIn(outside, env, [process.execPath, BIN, "mcp", "--print-config", "--client", "claude", "--json"]).stdout,
      ),
    );
    const argv = claude.claudeArgv ?? [];
    assert.deepEqual(argv.slice(0, 3), ["claude", "mcp", "add"]);
    assert.deepEqual(argv.slice(argv.indexOf("--") + 1), [config.command, ...config.args]);
    const line = runIn(outside, env, [process.execPath, BIN, "mcp", "--print-config", "--client", "claude"]);
    assert.match(
      line.stdout.trim(),
      /^claude mcp add --scope user piper-link -- \S+ \S+piper-link\.js --profile \S+ mcp$/,
    );
    assert.equal(
      runIn(outside, env, [process.execPath, BIN, "mcp", "--client", "claude"]).code,
      2,
      "--client without --print-config is a usage error",
    );
  });

  it("install-cli puts `piper-link` on PATH as a wrapper of this checkout, says whether its folder is on PATH, and never replaces a foreign file", async () => {
    const e = await newEnv();
    const outside = await tempDir("piper-mcp-outside-");
    const binDir = path.join(e.home, ".local", "bin");
    const basePath = (process.env["PATH"] ?? "")
      .split(path.delimiter)
      .filter((p) => !p.includes("node_modules"))
      .join(path.delimiter);
    const offPath = envOf(e, { PATH: basePath });
    const installed = InstallSchema.parse(
      JSON.parse(runIn(outside, offPath, [process.execPath, BIN, "install-cli", "--json"]).stdout),
    );
    assert.equal(installed.file, path.join(binDir, "piper-link"));
    assert.equal(installed.action, "installed");
    assert.equal(installed.onPath, false);
    assert.match(
      runIn(outside, offPath, [process.execPath, BIN, "install-cli"]).stdout,
      /is not on your PATH yet[\s\S]*export PATH="\$HOME\/\.local\/bin:\$PATH"/,
    );

    // With the folder on PATH, a plain `piper-link` works from the outside folder, and prints the same absolute config.
    const onPath = envOf(e, { PATH: `${binDir}${path.delimiter}${basePath}` });
    assert.equal(
      InstallSchema.parse(JSON.parse(runIn(outside, onPath, [process.execPath, BIN, "install-cli", "--json"]).stdout))
        .onPath,
      true,
    );
    const version = runIn(outside, onPath, ["sh", "-c", "piper-link --version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/);
    const viaPath = McpConfigSchema.parse(
      JSON.parse(runIn(outside, onPath, ["sh", "-c", "piper-link mcp --print-config --json"]).stdout),
    );
    assert.equal(viaPath.command, process.execPath);
    assert.equal(realpathSync(viaPath.args[0] ?? ""), realpathSync(BIN));

    // A file it did not write is left as it is: another folder holding someone else's `piper-link`.
    const other = path.join(e.home, "other-bin");
    mkdirSync(other);
    writeFileSync(path.join(other, "piper-link"), "#!/bin/sh\necho someone else\n", { mode: 0o755 });
    const refused = runIn(outside, onPath, [process.execPath, BIN, "install-cli", "--dir", other, "--json"]);
    assert.equal(refused.code, 1);
    assert.equal(z.object({ error: z.string() }).parse(JSON.parse(refused.stdout)).error, "conflict");
    assert.equal(readFileSync(path.join(other, "piper-link"), "utf8"), "#!/bin/sh\necho someone else\n");
    // … and so is a symlink (`npm link` makes one), and `--remove` removes only its own.
    const linked = path.join(e.home, "linked-bin");
    mkdirSync(linked);
    symlinkSync(BIN, path.join(linked, "piper-link"));
    assert.equal(runIn(outside, onPath, [process.execPath, BIN, "install-cli", "--dir", linked, "--remove"]).code, 1);
    assert.equal(readlinkSync(path.join(linked, "piper-link")), BIN);
    assert.equal(
      InstallSchema.parse(
        JSON.parse(runIn(outside, onPath, [process.execPath, BIN, "install-cli", "--remove", "--json"]).stdout),
      ).action,
      "removed",
    );
    assert.equal(existsSync(installed.file), false);
  });
});

/**
 * A stand-in MCP client, its own script: starts the server with the argv and folder it is given
 * (`{argv, cwd}` as JSON), speaks MCP on the server's stdio (initialize, then `request_access`,
 * which leaves a pending request without waiting), echoes the server's lines on its stdout and
 * `{"serverPid":…}` first, and lives until its stdin closes.
 */
const STAND_IN_CLIENT = `import { spawn } from "node:child_process";
const { argv, cwd } = JSON.parse(process.argv[2]);
const server = spawn(argv[0], argv.slice(1), { cwd, stdio: ["pipe", "pipe", "inherit"] });
process.stdout.write(JSON.stringify({ serverPid: server.pid }) + "\\n");
const send = (m) => server.stdin.write(JSON.stringify(m) + "\\n");
let buffer = "";
server.stdout.on("data", (chunk) => {
  buffer += chunk;
  for (let i = buffer.indexOf("\\n"); i >= 0; i = buffer.indexOf("\\n")) {
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 1);
    process.stdout.write(line + "\\n");
    if (JSON.parse(line).id === 1) {
      send({ jsonrpc: "2.0", method: "notifications/initialized" });
      send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "request_access", arguments: { name: "API_TOKEN", url: "https://api.example.com/v1/models", reason: "config test" } } });
    }
  }
});
server.on("exit", () => process.exit(0));
send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "stand-in", version: "0" } } });
process.stdin.on("end", () => { server.stdin.end(); server.kill(); process.exit(0); });
process.stdin.resume();
`;

describe("the MCP prompt names the MCP client, however it starts the server (real processes)", () => {
  let e: CliEnv;
  let work: string;
  let clientScript: string;
  const clients: ChildProcess[] = [];

  before(async () => {
    e = await newEnv();
    cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    assert.equal(cli(e, ["secrets", "set", "API_TOKEN"], "sk-config-test\n").code, 0);
    work = realpathSync(await tempDir("piper-mcp-client-"));
    clientScript = path.join(work, "stand-in-client.mjs");
    writeFileSync(clientScript, STAND_IN_CLIENT);
    // What npm's `.bin` holds: a link to the package's shebang script, found on PATH by a shell line.
    mkdirSync(path.join(work, "bin"));
    symlinkSync(BIN, path.join(work, "bin", "piper-link"));
  });

  after(() => {
    for (const c of clients) c.kill();
  });

  /**
   * Starts the stand-in client with the server's `argv` (run in `cwd`), waits until the server
   * answered its request_access, and returns the pending request of `clientId` and the pid of the
   * process the client started.
   */
  async function pendingFrom(
    clientId: string,
    argv: string[],
    cwd = work,
    extraEnv: Record<string, string> = {},
  ): Promise<{ request: z.infer<typeof RequestViewSchema>; serverPid: number }> {
    const child = spawn(process.execPath, [clientScript, JSON.stringify({ argv, cwd })], {
      cwd: work,
      env: envOf(e, {
        PATH: `${path.join(work, "bin")}${path.delimiter}${process.env["PATH"] ?? ""}`,
        npm_config_offline: "true",
        npm_config_update_notifier: "false",
        ...extraEnv,
      }),
      stdio: ["pipe", "pipe", "pipe"],
    });
    clients.push(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
    await waitFor(() => /"id":2/.test(out), `the answer to request_access (${err})`, 60_000);
    const serverPid = Number(/"serverPid":(\d+)/.exec(out)?.[1]);
    let request: z.infer<typeof RequestViewSchema> | undefined;
    await waitFor(async () => {
      request = (await cliJsonAsync(e, ["requests"], Requests)).find((r) => r.agentClientId === clientId);
      return request !== undefined;
    }, `a pending request of ${clientId} (the client saw: ${out} ${err})`);
    assert.ok(request);
    return { request, serverPid };
  }

  function assertNamesTheClient(request: z.infer<typeof RequestViewSchema>): void {
    assert.equal(
      request.process?.script,
      clientScript,
      `the program is the stand-in client, not a shell: ${JSON.stringify(request.process)}`,
    );
    assert.equal(path.basename(request.process.executable ?? ""), path.basename(realpathSync(process.execPath)));
  }

  it("through `sh -c 'node …/bin/piper-link.js mcp'`", async () => {
    const { request, serverPid } = await pendingFrom("cfg-sh", ["sh", "-c", `node '${BIN}' mcp --client-id cfg-sh`]);
    // The chain really had a shell between the client and the server (a shell that execs would prove nothing).
    assert.match(path.basename(readlinkSync(`/proc/${serverPid}/exe`)), /^(sh|dash|bash)$/);
    assertNamesTheClient(request);
    assert.equal(request.process?.unverifiable ?? null, null);
  });

  it("through a shell line that runs npm's `.bin` link (`sh -c \"'piper-link' mcp\"`, as npx starts it)", async () => {
    const { request, serverPid } = await pendingFrom("cfg-bin", ["sh", "-c", "'piper-link' mcp --client-id cfg-bin"]);
    assert.match(path.basename(readlinkSync(`/proc/${serverPid}/exe`)), /^(sh|dash|bash)$/);
    assertNamesTheClient(request);
  });

  it("through the real `npx piper-link mcp` (in the clone): the client is named, and npx makes it unverifiable", async () => {
    const { request } = await pendingFrom("cfg-npx", ["npx", "piper-link", "mcp", "--client-id", "cfg-npx"], ROOT);
    assertNamesTheClient(request);
    assert.equal(request.process?.unverifiable, THROUGH_NPX);
  });

  it("but not past a shell line that does more than start it: that shell is the program", async () => {
    const { request } = await pendingFrom("cfg-more", ["sh", "-c", `node '${BIN}' mcp --client-id cfg-more; exit 0`]);
    assert.equal(request.process?.script, INLINE_SCRIPT);
    assert.match(path.basename(request.process.executable ?? ""), /^(sh|dash|bash)$/);
  });
});

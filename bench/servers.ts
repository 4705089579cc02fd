/**
 * The servers a benchmark measures, each run in its own process so client and server never share
 * an event loop: `link` (the real Link core), `bare-http` (a plain http server answering the same
 * JSON as /piper-link-context), `bare-ws` (a plain ws echo server), and `link-authority` (the Link
 * with its embedded authority, signed in, with one secret).
 *
 * The Link is imported from the compiled `dist/` (built by `npm run build:node`), not from the
 * TypeScript sources, so what is measured is the JavaScript that ships; only this harness file goes
 * through tsx, whose loader leaves `.js` files as they are.
 *
 * Protocol with the parent (bench/run.ts), one JSON object per line on stdout:
 *   first line, when ready: `{"port":N,"pid":N,...}`;
 *   then, for each `cpu` line on stdin: `{"cpu":{"user":µs,"system":µs}}` (process.cpuUsage() of
 *   this process, so the bench can charge the server's own CPU time to the operations it served).
 */
import http from "node:http";
import readline from "node:readline";
import { WebSocketServer } from "ws";
import { createLink } from "../dist/main/core/link.js";
import { readLinkEnv } from "../dist/main/core/runtime/env.js";
import { BENCH_UNLOCK, memoryKeychain, tempProfilePaths } from "./bench-helpers.js";
import { silentLogger } from "../dist/main/core/runtime/logger.js";

export const BENCH_INSTANCE_ID = "inst_bench_0123456789abcdef";
const BODY = JSON.stringify({ instanceId: BENCH_INSTANCE_ID });

function listeningPort(server: http.Server | WebSocketServer): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the server is not listening on a TCP port");
  return address.port;
}

async function main(kind: string): Promise<number> {
  if (kind === "bare-http") {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": Buffer.byteLength(BODY),
      });
      res.end(BODY);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return listeningPort(server);
  }
  if (kind === "bare-ws") {
    // The same ws options as the Link's agent channel, so the baseline differs only by the Link's own work.
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, clientTracking: false });
    wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
    await new Promise<void>((r) => wss.once("listening", r));
    return listeningPort(wss);
  }
  if (kind === "link" || kind === "link-authority") {
    const paths = tempProfilePaths("bench");
    const link = createLink({
      env: readLinkEnv(process.env),
      profile: "bench",
      port: 0,
      paths,
      keychain: memoryKeychain("bench", [["instance-id", BENCH_INSTANCE_ID]]),
      log: silentLogger(),
      unlock: BENCH_UNLOCK,
      // The saturation run sends far above the per-connection defaults; the limits are not what is measured.
      limits: { messagesPerSecond: 1e9, messageBurst: 1e9 },
      ...(kind === "link-authority" ? { authority: { kind: "embedded" as const, agentRatePerSecond: 1e6 } } : {}),
    });
    const status = await link.start();
    if (kind === "link-authority") {
      await link.api.devSignIn({ name: "bench" });
      await link.api.setSecret({ name: "BENCH_KEY", value: "bench-secret-value" });
      await link.api.setSecret({ name: "BENCH_ONCE", value: "bench-once-value" });
    }
    process.on("SIGTERM", () => void link.stop().then(() => process.exit(0)));
    // pyper-sdk agents reach their secrets through the Link's own loopback HTTPS endpoints.
    extra = {
      controlToken: link.controlToken,
      pyperPort: String(status.pyper?.port ?? 0),
      pyperCert: status.pyper?.certFile ?? "",
    };
    return status.port;
  }
  throw new Error(`unknown server kind ${kind}`);
}

let extra: Record<string, string> = {};
const port = await main(process.argv[2] ?? "");
process.stdout.write(`${JSON.stringify({ port, pid: process.pid, ...extra })}\n`);
const commands = readline.createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (line.trim() === "cpu") process.stdout.write(`${JSON.stringify({ cpu: process.cpuUsage() })}\n`);
});
// stdin closes when the bench ends or dies: never outlive it (an orphaned server would skew the next run).
commands.on("close", () => process.kill(process.pid, "SIGTERM"));

/**
 * `npm run bench`: the Link's hot paths against bare baselines measured in the same run on the same
 * machine, reported as ratios (these machines are noisy; absolute times mean little). Short mode by
 * default; `--full` for more iterations. Writes a JSON report to bench/results/.
 *
 *   discovery:  GET /piper-link-context p50   vs  a bare http server returning the same JSON   (target <= 1.3x)
 *   ws hello:   hello -> welcome p50          vs  a bare ws echo of the same frame             (target <= 1.5x)
 *   granted resolve (agent WS -> Link -> embedded authority -> value) p50
 *               vs  the bare ws echo                                                         (target <= 5x)
 *               vs  pyper-sdk's three HTTPS calls against the same authority                 (target >= 10x faster)
 * plus absolute figures from bench/capacity.ts: approval latency, cold start, idle RSS, 1,000 agents.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { AGENT_SUBPROTOCOL, CONTROL_SUBPROTOCOL } from "../src/shared/version.js";
import { PYPER_PATHS } from "../src/server/http.js";
import { approvalLatency, capacityFigures, type Figure } from "./capacity.js";

const full = process.argv.includes("--full");
const ITER = full ? 20_000 : 3_000;
const WARMUP = full ? 5_000 : 2_000;
const here = path.dirname(fileURLToPath(import.meta.url));

interface ServerInfo {
  port: number;
  controlToken?: string;
  tlsCert?: string;
}

async function startServer(kind: string): Promise<ServerInfo & { child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "servers.ts"), kind], { stdio: ["ignore", "pipe", "inherit"] });
  const info = await new Promise<ServerInfo>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve(JSON.parse(line) as ServerInfo);
    });
    child.once("exit", (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { ...info, child };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface Stats {
  p50: number;
  p99: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

async function measure(iterations: number, op: () => Promise<void>): Promise<Stats> {
  for (let i = 0; i < WARMUP; i++) await op();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    await op();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return stats(samples);
}

function httpGetter(port: number, pathName: string): () => Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return () =>
    new Promise((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: pathName, agent, headers: { Host: `127.0.0.1:${port}` } }, (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        })
        .on("error", reject);
    });
}

async function wsRoundTrip(url: string, protocol: string | undefined, frame: string, expect: (data: string) => boolean): Promise<{ ws: WebSocket; op: () => Promise<void>; close: () => void }> {
  const ws = new WebSocket(url, protocol);
  await new Promise((r, j) => {
    ws.once("open", r);
    ws.once("error", j);
  });
  let waiting: ((data: string) => void) | null = null;
  ws.on("message", (d: Buffer) => waiting?.(d.toString()));
  return {
    ws,
    op: () =>
      new Promise((resolve, reject) => {
        waiting = (data) => (expect(data) ? resolve() : reject(new Error(`unexpected frame ${data}`)));
        ws.send(frame);
      }),
    close: () => ws.close(),
  };
}

interface Row {
  name: string;
  link: Stats;
  baseline: Stats;
  ratio: number;
  /** For "at most" targets the ratio must be <= target; for "faster than" it must be <= 1/target. */
  target: number;
  kind: "at_most" | "faster_by";
  pass: boolean;
}

/** Signs a bench agent up for BENCH_KEY: resolve (pending), approve through the control channel. */
async function grantBenchKey(port: number, controlToken: string, agentWs: WebSocket): Promise<void> {
  const pending = await new Promise<{ requestId: string }>((resolve) => {
    agentWs.once("message", (d: Buffer) => resolve(JSON.parse(d.toString()) as { requestId: string }));
    agentWs.send(JSON.stringify({ type: "resolve", id: "setup", variable: "BENCH_KEY", wait: false }));
  });
  const control = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL);
  await new Promise((r) => control.once("open", r));
  control.send(JSON.stringify({ type: "auth", token: controlToken }));
  control.send(JSON.stringify({ type: "call", id: 1, method: "approveRequest", params: { requestId: pending.requestId, scope: { kind: "until_revoked" } } }));
  await new Promise<void>((resolve, reject) =>
    control.on("message", (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { type: string; id?: number; message?: string };
      if (m.type === "result" && m.id === 1) resolve();
      if (m.type === "error") reject(new Error(m.message));
    }),
  );
  control.close();
}

function httpsPost(agent: https.Agent, url: URL, body: unknown): Promise<Record<string, unknown>> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text) as Record<string, unknown>) : reject(new Error(`HTTP ${res.statusCode}: ${text}`))));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

const fmt = (n: number): string => n.toFixed(3);

async function main(): Promise<void> {
  const [link, bareHttp, bareWs, linkAuth] = await Promise.all([startServer("link"), startServer("bare-http"), startServer("bare-ws"), startServer("link-authority")]);
  const servers = [link, bareHttp, bareWs, linkAuth];
  const rows: Row[] = [];
  const figures: Figure[] = [];
  try {
    // Interleave baseline and Link in rounds so drift in machine load hits both alike.
    const rounds = 5;
    const per = Math.ceil(ITER / rounds);
    const disc = { link: [] as Stats[], base: [] as Stats[] };
    const getLink = httpGetter(link.port, "/piper-link-context");
    const getBare = httpGetter(bareHttp.port, "/piper-link-context");
    for (let r = 0; r < rounds; r++) {
      disc.base.push(await measure(per, getBare));
      disc.link.push(await measure(per, getLink));
    }
    rows.push(row("discovery GET /piper-link-context", disc.link, disc.base, 1.3));

    const hello = JSON.stringify({ type: "hello", id: 1, protocol: 1, agent: { clientId: "agent_bench", name: "Bench" }, sdk: { name: "bench", version: "0" } });
    const linkWs = await wsRoundTrip(`ws://127.0.0.1:${link.port}/v1/link`, AGENT_SUBPROTOCOL, hello, (d) => d.includes('"welcome"'));
    const echoWs = await wsRoundTrip(`ws://127.0.0.1:${bareWs.port}/`, undefined, hello, (d) => d === hello);
    const ws = { link: [] as Stats[], base: [] as Stats[] };
    for (let r = 0; r < rounds; r++) {
      ws.base.push(await measure(per, echoWs.op));
      ws.link.push(await measure(per, linkWs.op));
    }
    linkWs.close();
    rows.push(row("ws hello -> welcome", ws.link, ws.base, 1.5));

    // Granted resolve through the Link and its embedded authority, and pyper-sdk's three calls.
    const agentWs = new WebSocket(`ws://127.0.0.1:${linkAuth.port}/v1/link`, AGENT_SUBPROTOCOL);
    await new Promise((r) => agentWs.once("open", r));
    const welcome = await new Promise<{ instanceId: string; authority: string }>((resolve) => {
      agentWs.once("message", (d: Buffer) => resolve(JSON.parse(d.toString()) as { instanceId: string; authority: string }));
      agentWs.send(hello);
    });
    await grantBenchKey(linkAuth.port, linkAuth.controlToken ?? "", agentWs);
    agentWs.close();
    const resolveFrame = JSON.stringify({ type: "resolve", id: 7, variable: "BENCH_KEY" });
    const granted = await wsRoundTrip(`ws://127.0.0.1:${linkAuth.port}/v1/link`, AGENT_SUBPROTOCOL, resolveFrame, (d) => d.includes('"secret"'));
    await new Promise((r) => {
      granted.ws.once("message", r);
      granted.ws.send(hello);
    });
    const resolveOp = granted.op;
    const tls = new https.Agent({ keepAlive: true, maxSockets: 1, ca: fs.readFileSync(linkAuth.tlsCert ?? "") });
    const base = new URL(welcome.authority);
    const ident = { agentClientId: "agent_bench", instanceId: welcome.instanceId };
    const threeCalls = async (): Promise<void> => {
      const { credentialId } = await httpsPost(tls, new URL(PYPER_PATHS.resolveMapping, base), { ...ident, variableName: "bench_key" });
      const scoped = await httpsPost(tls, new URL(PYPER_PATHS.scopedCredentials, base), { ...ident, credentialIds: [credentialId] });
      const ids = scoped["granted_credential_ids"] as string[];
      const raw = await httpsPost(tls, new URL(PYPER_PATHS.exchangeSecret, base), { ...ident, piperCredentialId: ids[0] });
      if (raw["secret_value"] !== "bench-secret-value") throw new Error("wrong value");
    };
    const slowPer = Math.max(50, Math.ceil(per / 10));
    const res = { link: [] as Stats[], echo: [] as Stats[], three: [] as Stats[] };
    for (let r = 0; r < rounds; r++) {
      res.echo.push(await measure(slowPer, echoWs.op));
      res.link.push(await measure(slowPer, resolveOp));
      res.three.push(await measure(Math.max(20, Math.ceil(slowPer / 5)), threeCalls));
    }
    granted.close();
    echoWs.close();
    tls.destroy();
    figures.push(await approvalLatency(linkAuth.port, linkAuth.controlToken ?? "", full ? 100 : 20));
    rows.push(row("granted resolve vs ws echo", res.link, res.echo, 5));
    rows.push(row("granted resolve vs pyper 3-call flow", res.link, res.three, 10, "faster_by"));
  } finally {
    for (const s of servers) s.child.kill("SIGTERM");
  }
  figures.push(...(await capacityFigures(full)));

  const header = ["case", "link p50 ms", "baseline p50 ms", "link p99 ms", "baseline p99 ms", "ratio (p50)", "target", "result"];
  const lines = rows.map((r) => [
    r.name,
    fmt(r.link.p50),
    fmt(r.baseline.p50),
    fmt(r.link.p99),
    fmt(r.baseline.p99),
    r.kind === "at_most" ? `${r.ratio.toFixed(2)}x` : `${(1 / r.ratio).toFixed(1)}x faster`,
    r.kind === "at_most" ? `<= ${r.target}x` : `>= ${r.target}x faster`,
    r.pass ? "PASS" : "MISS",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const print = (cells: string[]): void => console.log(cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
  console.log(`\nPiper Link benchmark (${full ? "full" : "short"} mode, ${ITER} iterations per case, node ${process.version})\n`);
  print(header);
  print(widths.map((w) => "-".repeat(w)));
  lines.forEach(print);
  console.log("");
  const fw = Math.max(...figures.map((f) => f.name.length));
  console.log(`${"figure".padEnd(fw)}  ${"value".padStart(10)}  target        result`);
  for (const f of figures) console.log(`${f.name.padEnd(fw)}  ${`${f.value.toFixed(1)} ${f.unit}`.padStart(10)}  ${`< ${f.target} ${f.unit}`.padEnd(12)}  ${f.pass ? "PASS" : "MISS"}`);
  const dir = path.join(here, "results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ mode: full ? "full" : "short", iterations: ITER, node: process.version, rows, figures }, null, 2)}\n`);
  console.log(`\nwritten ${path.relative(process.cwd(), file)}`);
  await (await import("./calls.js")).callBench(full);
}

/** Median of the per-round p50s, so one noisy round does not decide the ratio. */
function row(name: string, link: Stats[], baseline: Stats[], target: number, kind: Row["kind"] = "at_most"): Row {
  const median = (xs: Stats[]): Stats => [...xs].sort((a, b) => a.p50 - b.p50)[Math.floor(xs.length / 2)] as Stats;
  const l = median(link);
  const b = median(baseline);
  const ratio = l.p50 / b.p50;
  return { name, link: l, baseline: b, ratio, target, kind, pass: kind === "at_most" ? ratio <= target : ratio <= 1 / target };
}


await main();

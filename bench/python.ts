/**
 * Bench of the Python SDK (python/, piper_link), run by `npm run bench` after the call bench:
 *
 *   granted get_secret: the sync PiperClient -> Link -> value, p50 and the Python process's CPU per call
 *               vs a bare Python WebSocket echo (websockets, same background-loop pattern) of a
 *               resolve-sized frame, in the same Python process                       (reported, no target)
 *   call:       piper.call() through the Link to a local HTTPS upstream, p50
 *               vs a direct keep-alive http.client HTTPS request to the same upstream  (target: overhead <= 1 ms p50)
 *
 * The Link (embedded authority, in-memory keychain) and the upstream run as in bench/calls.ts, each
 * in its own process; the Python side (bench/python_bench.py) runs from a venv made with the
 * README's command, and asks for approval by printing the request id, approved here over the
 * control channel as the person would. Rounds interleave; the median round decides.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { approveOverControl } from "./bench-helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, "..");

const Figure = z.object({ p50: z.number(), p99: z.number(), cpuMs: z.number() });
const ResultSchema = z.object({
  result: z.object({ getSecret: Figure, echo: Figure, call: Figure, direct: Figure, iterations: z.number() }),
});
export type PythonBenchResult = z.infer<typeof ResultSchema>["result"] & { callOverheadMs: number; pass: boolean };

function startCallsChild(args: string[]): Promise<{ child: ChildProcess; info: Record<string, unknown> }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "calls.ts"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    lines.once("line", (line) => resolve({ child, info: z.record(z.string(), z.unknown()).parse(JSON.parse(line)) }));
    child.once("exit", (code) => reject(new Error(`bench calls ${args[0] ?? ""} exited with ${code}`)));
  });
}

/** Runs the Python bench and prints its table; `full` measures more calls. */
export async function pythonBench(full: boolean): Promise<PythonBenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "piper-bench-py-"));
  const venv = path.join(dir, ".venv");
  const python = process.platform === "linux" ? "/usr/bin/python3" : "python3";
  for (const [cmd, args] of [
    [python, ["-m", "venv", "--system-site-packages", venv]],
    [path.join(venv, "bin", "pip"), ["install", "--quiet", "--no-build-isolation", "./python"]],
  ] as const) {
    const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", env: { ...process.env, PIP_NO_INDEX: "1" } });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stdout}${r.stderr}`);
  }
  const upstream = await startCallsChild(["upstream", dir]);
  const caFile = String(upstream.info["caFile"]);
  const origin = `https://127.0.0.1:${String(upstream.info["port"])}`;
  const link = await startCallsChild(["link", caFile]);
  const port = Number(link.info["port"]);
  const token = String(link.info["controlToken"]);
  try {
    const iterations = full ? 3000 : 500;
    const child = spawn(
      path.join(venv, "bin", "python"),
      [path.join(here, "python_bench.py"), `ws://127.0.0.1:${port}/v1/link`, origin, caFile, String(iterations)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const lines = readline.createInterface({ input: child.stdout });
    const result = await new Promise<z.infer<typeof ResultSchema>["result"]>((resolve, reject) => {
      lines.on("line", (line) => {
        const m = z.object({ pending: z.string() }).safeParse(JSON.parse(line));
        if (m.success) void approveOverControl(port, token, m.data.pending).catch(reject);
        else resolve(ResultSchema.parse(JSON.parse(line)).result);
      });
      child.once("exit", (code) => code !== 0 && reject(new Error(`python bench exited with ${code}`)));
    });
    const callOverheadMs = result.call.p50 - result.direct.p50;
    const f = (x: number): string => x.toFixed(3);
    console.log(`\nPython SDK (${result.iterations} operations each; median of 5 rounds)\n`);
    console.log(
      `granted get_secret   p50 ${f(result.getSecret.p50)} ms  CPU ${f(result.getSecret.cpuMs)} ms/call   bare Python ws echo p50 ${f(result.echo.p50)} ms  CPU ${f(result.echo.cpuMs)} ms/op   ratio ${(result.getSecret.p50 / result.echo.p50).toFixed(2)}x (no target)`,
    );
    console.log(
      `call                 p50 ${f(result.call.p50)} ms  direct http.client p50 ${f(result.direct.p50)} ms  overhead ${f(callOverheadMs)} ms (target <= 1 ms)  ${callOverheadMs <= 1 ? "PASS" : "MISS"}`,
    );
    return { ...result, callOverheadMs, pass: callOverheadMs <= 1 };
  } finally {
    link.child.kill("SIGTERM");
    upstream.child.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await pythonBench(process.argv.includes("--full"));
}

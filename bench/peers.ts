/**
 * A peer for `piper-link run`: the cost of starting a command with a secret in its environment,
 * side by side in one run (the cases take turns, see bench/peers_driver.py):
 *
 *   piper-link run --secret BENCH_PEER_KEY -- true   the secret granted (until revoked) beforehand,
 *                                                   so each run is a resolve from the live grant;
 *   dotenvx run -- true                              @dotenvx/dotenvx (a devDependency) reading a
 *                                                   .env that holds the same variable;
 *   node -e ''                                       a bare Node child: the floor both pay.
 *
 * Whole-process wall time, p50 (target: piper-link run no slower than dotenvx run), and the CPU
 * time of each process with its children (wait4's rusage), which other processes do not inflate.
 * The Link (embedded authority, signed in, one secret) runs in its own process from the compiled dist/.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { createLink } from "../dist/main/core/link.js";
import { readLinkEnv } from "../dist/main/core/runtime/env.js";
import { silentLogger } from "../dist/main/core/runtime/logger.js";
import { approveOverControl, BENCH_UNLOCK, memoryKeychain, tempProfilePaths } from "./bench-helpers.js";
import { p50 } from "./measure.js";

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), "..");
const SECRET = "bench-peer-secret-value";

/** The Link for the peer bench; prints `{port, controlToken}` once it serves. */
async function serveLink(): Promise<void> {
  const link = createLink({
    env: readLinkEnv(process.env),
    profile: "bench-peers",
    port: 0,
    paths: tempProfilePaths("bench-peers"),
    keychain: memoryKeychain("bench-peers"),
    log: silentLogger(),
    unlock: BENCH_UNLOCK,
    authority: { kind: "embedded" },
  });
  const status = await link.start();
  await link.api.devSignIn({ name: "bench" });
  await link.api.setSecret({ name: "BENCH_PEER_KEY", value: SECRET });
  process.on("SIGTERM", () => void link.stop().then(() => process.exit(0)));
  process.stdout.write(`${JSON.stringify({ port: status.port, controlToken: link.controlToken })}\n`);
}

/** dotenvx's command: this package's devDependency first, else a copy installed under /tmp/dotenvx. */
function findDotenvx(): string | null {
  for (const candidate of [path.join(root, "node_modules/.bin/dotenvx"), "/tmp/dotenvx/node_modules/.bin/dotenvx"]) {
    if (fs.existsSync(candidate)) return candidate;
  }
  return null;
}

const RunsSchema = z.record(z.string(), z.array(z.tuple([z.number(), z.number(), z.number()])));

export interface PeerResult {
  wallP50: Record<string, number>;
  cpuP50: Record<string, number>;
  pass: boolean | null;
}

/** Runs the peer comparison and prints its table; `full` runs more rounds. */
export async function peerBench(full: boolean): Promise<PeerResult | null> {
  const dotenvx = findDotenvx();
  if (dotenvx === null) {
    console.log(
      "\npeer comparison skipped: dotenvx not found (npm install, or npm install --prefix /tmp/dotenvx @dotenvx/dotenvx)",
    );
    return null;
  }
  const linkChild: ChildProcess = spawn(process.execPath, ["--import", "tsx", here, "link"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "piper-bench-peers-"));
  try {
    const info = await new Promise<{ port: number; controlToken: string }>((resolve, reject) => {
      let out = "";
      linkChild.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) resolve(JSON.parse(out.split("\n")[0] ?? "") as { port: number; controlToken: string });
      });
      linkChild.once("exit", (code) => reject(new Error(`peer bench Link exited with ${code}`)));
    });
    fs.writeFileSync(path.join(cwd, ".env"), `BENCH_PEER_KEY=${SECRET}\n`);
    const env: Record<string, string> = {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: cwd,
      PIPER_LINK_URL: `ws://127.0.0.1:${info.port}/v1/link`,
    };
    const piperRun = [
      process.execPath,
      path.join(root, "bin/piper-link.js"),
      "run",
      "--secret",
      "BENCH_PEER_KEY",
      "--",
      "true",
    ];
    // The first run asks the person: approve it until revoked, as a person would once. (Retried:
    // on a loaded machine the Link that has just started may miss the SDK's connect timeout.)
    const firstRun = (): Promise<number | null> =>
      new Promise((resolve) => {
        const first = spawn(piperRun[0] ?? "", piperRun.slice(1), { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
        let asked = false;
        first.stderr.on("data", (c: Buffer) => {
          const m = /\(request ([^)\s]+)\)/.exec(c.toString());
          if (m?.[1] && !asked) {
            asked = true;
            void approveOverControl(info.port, info.controlToken, m[1]);
          }
        });
        first.once("exit", resolve);
      });
    let code = await firstRun();
    for (let i = 0; i < 3 && code !== 0; i++) code = await firstRun();
    if (code !== 0) throw new Error(`the first piper-link run exited with ${code}`);
    const cases = {
      "piper-link run --secret BENCH_PEER_KEY -- true": piperRun,
      "dotenvx run -- true": [process.execPath, dotenvx, "run", "--", "true"],
      "node -e ''": [process.execPath, "-e", ""],
    };
    const n = full ? 40 : 15;
    const out = await new Promise<string>((resolve, reject) => {
      const driver = spawn(
        "python3",
        [path.join(path.dirname(here), "peers_driver.py"), JSON.stringify({ cases, n, cwd, env })],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let text = "";
      driver.stdout.on("data", (c: Buffer) => (text += c.toString()));
      driver.once("exit", (code) =>
        code === 0 ? resolve(text) : reject(new Error(`peers_driver.py exited with ${code}`)),
      );
    });
    const runs = RunsSchema.parse(JSON.parse(out));
    const wallP50: Record<string, number> = {};
    const cpuP50: Record<string, number> = {};
    console.log(
      `\nPeer: a command started with a secret in its environment (${n} runs each, taking turns; whole process, spawn -> reaped)\n`,
    );
    for (const [name, samples] of Object.entries(runs)) {
      const failed = samples.filter(([, , status]) => status !== 0).length;
      if (failed > 0) throw new Error(`${name} failed ${failed} of ${samples.length} runs`);
      wallP50[name] = p50(samples.map(([wall]) => wall));
      cpuP50[name] = p50(samples.map(([, cpu]) => cpu));
      console.log(
        `${name.padEnd(48)}  wall p50 ${wallP50[name].toFixed(1).padStart(7)} ms   CPU p50 ${cpuP50[name].toFixed(1).padStart(7)} ms (with its children)`,
      );
    }
    const ours = wallP50[Object.keys(cases)[0] ?? ""] ?? NaN;
    const theirs = wallP50["dotenvx run -- true"] ?? NaN;
    const pass = ours <= theirs;
    console.log(
      `piper-link run vs dotenvx run: wall p50 ${(ours / theirs).toFixed(2)}x (target <= 1.00x: no slower than dotenvx)  ${pass ? "PASS" : "MISS"}`,
    );
    return { wallP50, cpuP50, pass };
  } finally {
    linkChild.kill("SIGTERM");
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === here) {
  if (process.argv[2] === "link") await serveLink();
  else {
    await peerBench(process.argv.includes("--full"));
    process.exit(0);
  }
}

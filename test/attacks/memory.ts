/**
 * Reading another process's memory as an attacker of the same user: `/proc/PID/mem` (a mapped,
 * readable region from `/proc/PID/maps`), `/proc/PID/environ`, and `kill -USR1` (Node opens its
 * inspector on 127.0.0.1:9229 on that signal), for each PID in argv. With `--spawn-link`, it first
 * starts a Link itself (`piper-link start --foreground`, unlocked from PIPER_LINK_PASSPHRASE_FILE)
 * as its own child, so the attacker is the Link's ancestor (what Yama's ptrace_scope 1 allows).
 * Prints one JSON line: per PID, what each attempt got.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

const args = process.argv.slice(2);
const say = (line: unknown): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

function attempt(fn: () => string): string {
  try {
    return fn();
  } catch (err) {
    return `refused: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

function readMem(pid: number): string {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, "utf8");
  const region = maps.split("\n").find((l) => l.split(" ")[1]?.startsWith("r") === true);
  if (region === undefined) return "no readable region";
  const [start] = (region.split(" ")[0] ?? "").split("-");
  const fd = fs.openSync(`/proc/${pid}/mem`, "r");
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, Number.parseInt(start ?? "0", 16));
    return `read ${n} bytes`;
  } finally {
    fs.closeSync(fd);
  }
}

function inspectorOpen(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(9229, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const pids = args.filter((a) => /^\d+$/.test(a)).map(Number);
let spawned: ReturnType<typeof spawn> | null = null;
if (args.includes("--spawn-link")) {
  const bin = args[args.indexOf("--spawn-link") + 1] ?? "";
  spawned = spawn(process.execPath, [bin, "start", "--foreground", "--port", "0", "--json"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  spawned.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 30_000;
  while (!out.trim().endsWith("}") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const status = JSON.parse(out) as { pid: number };
  pids.push(status.pid);
  // Its embedded authority, a child of the Link (found by its parent pid, as ps would).
  for (const entry of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    const stat = attempt(() => fs.readFileSync(`/proc/${entry}/stat`, "utf8"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const cmdline = attempt(() => fs.readFileSync(`/proc/${entry}/cmdline`, "utf8"));
    if (ppid === status.pid && cmdline.includes("serve")) pids.push(Number(entry));
  }
}

const inspectorBefore = await inspectorOpen();
const results = [];
for (const pid of pids) {
  const mem = attempt(() => readMem(pid));
  const environ = attempt(() => `read ${fs.readFileSync(`/proc/${pid}/environ`).length} bytes`);
  const usr1 = attempt(() => (process.kill(pid, "SIGUSR1"), "sent"));
  await new Promise((r) => setTimeout(r, 500));
  const alive = attempt(() => (process.kill(pid, 0), "alive"));
  results.push({ pid, mem, environ, usr1, alive, inspector: !inspectorBefore && (await inspectorOpen()) });
}
say({ spawned: spawned !== null, results });
const own = spawned;
if (own !== null) {
  own.kill("SIGTERM");
  await new Promise((r) => own.once("exit", r));
}

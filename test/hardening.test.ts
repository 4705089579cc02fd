// Process hardening (src/platform/harden.ts) against real processes: Node's own reading of
// NODE_OPTIONS, SIGUSR1 sent to a running process, /proc read by a second process of the same
// non-root user (root ignores dumpability, so the target and the attacker run as TEST_USER), and
// the Link and its authority refusing to start with Node's debugger enabled.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  codeLoadingOption,
  heapWritingOption,
  inspectorOption,
  parseNodeOptions,
} from "../src/platform/node-options.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { BIN, cliJson, newEnv, stopAll } from "./cli-helpers.js";
import { bundleForAnyUser, ensureTestUser, secondUserUnavailable, TEST_USER } from "./as-user.js";
import { waitFor } from "./helpers.js";

after(stopAll);

const FIXTURE = fileURLToPath(new URL("./fixtures/harden-child.ts", import.meta.url));

/** A running fixture: its JSON lines on stdout and its stderr as they arrive. */
interface Child {
  proc: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, unknown>>;
  stderr(): string;
  ready: Promise<Record<string, unknown>>;
  /** Asks the child whether its inspector is open; resolves with the URL or null. */
  inspector(): Promise<string | null>;
  end(): void;
}

const children: Child[] = [];
after(() => {
  for (const c of children) c.end();
});

function startChild(command: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const proc = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  let out = "";
  let err = "";
  proc.stdout.on("data", (c: Buffer) => {
    out += c.toString();
    let nl: number;
    while ((nl = out.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(out.slice(0, nl)) as Record<string, unknown>);
      out = out.slice(nl + 1);
    }
  });
  proc.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<never>((_, reject) =>
    proc.once("exit", (code) => reject(new Error(`the child exited (${code}) before it was ready: ${err}`))),
  );
  const first = async (): Promise<Record<string, unknown>> => {
    await waitFor(() => lines.length > 0, "the child's first line", 15_000);
    const line = lines[0];
    assert.ok(line);
    return line;
  };
  const child: Child = {
    proc,
    lines,
    stderr: () => err,
    ready: Promise.race([first(), exited]),
    async inspector() {
      const before = lines.length;
      proc.stdin.write("inspector?\n");
      await waitFor(() => lines.length > before, "the child's answer about its inspector");
      const answer = lines[before]?.["inspector"];
      return typeof answer === "string" ? answer : null;
    },
    end: () => void proc.stdin.end(),
  };
  child.ready.catch(() => undefined);
  children.push(child);
  return child;
}

let bundle = "";
before(async () => {
  bundle = await bundleForAnyUser(FIXTURE);
});

describe("NODE_OPTIONS is read with Node's own grammar", () => {
  // Each value is given to a real `node`; whether its inspector opened is what the parser must find.
  const opens = "--inspect=127.0.0.1:0";
  const table: string[] = [
    opens,
    `"${opens}"`,
    `--title="a b" ${opens}`,
    `--title="a ${opens}"`,
    `--title="a\\" ${opens}"`,
    `--title=x\t${opens}`,
    `--insp"ect=127.0.0.1:0"`,
    `--max-old-space-size=64  ${opens}`,
    "--title=inspect",
  ];
  for (const value of table) {
    it(JSON.stringify(value), () => {
      const r = spawnSync(
        process.execPath,
        [
          "-e",
          'process.stdout.write(String(require("node:inspector").url() !== undefined)); require("node:inspector").close()',
        ],
        {
          env: { ...process.env, NODE_OPTIONS: value },
          encoding: "utf8",
          timeout: 15_000,
        },
      );
      const nodeOpened = r.stdout === "true";
      assert.equal(
        inspectorOption(parseNodeOptions(value)) !== null,
        nodeOpened,
        `node ${nodeOpened ? "opened" : "did not open"} its inspector; stderr: ${r.stderr}`,
      );
    });
  }

  it("every inspector and old debug option is found, underscores included; not after `--`", () => {
    for (const arg of [
      "--inspect",
      "--inspect=9230",
      "--inspect-brk",
      "--inspect-brk=0",
      "--inspect-port=0",
      "--inspect-wait",
      "--inspect_brk",
      "--inspect-publish-uid=http",
      "--debug",
      "--debug-brk",
      "--debug-port=1",
    ]) {
      assert.equal(inspectorOption(["--max-old-space-size=64", arg]), arg, arg);
    }
    for (const args of [["--import", "tsx"], ["--title=--inspect"], ["--", "--inspect"], ["--inspector-free"]]) {
      assert.equal(inspectorOption(args), null, JSON.stringify(args));
    }
  });
});

describe("code loaded through NODE_OPTIONS is found", () => {
  it("--require/-r, --import, --loader, --experimental-loader, separate or with =value; not other options", () => {
    for (const [value, found] of [
      ["--require /tmp/x.cjs", "--require"],
      ["-r /tmp/x.cjs", "-r"],
      ["--require=/tmp/x.cjs", "--require=/tmp/x.cjs"],
      ['--title="a b" --import=./x.mjs', "--import=./x.mjs"],
      ["--loader ./l.mjs", "--loader"],
      ["--experimental_loader=./l.mjs", "--experimental_loader=./l.mjs"],
      ["--max-old-space-size=64 --experimental-vm-modules", null],
      ['--title="--require x"', null],
    ] as const) {
      assert.equal(codeLoadingOption(parseNodeOptions(value)), found, value);
    }
    assert.equal(heapWritingOption(parseNodeOptions("--heapsnapshot-signal=SIGUSR2")), "--heapsnapshot-signal=SIGUSR2");
    assert.equal(heapWritingOption(parseNodeOptions("--heap-prof-dir=x --title=heapsnapshot")), null);
  });
});

describe("kill -USR1 opens no inspector in a hardened process", () => {
  it("a hardened child ignores SIGUSR1; a plain one opens its inspector (the signal was delivered)", async () => {
    const hardened = startChild(process.execPath, [bundle, "hardened"], process.env);
    const plain = startChild(process.execPath, [bundle, "plain"], process.env);
    const [h, p] = await Promise.all([hardened.ready, plain.ready]);
    assert.equal(h["ready"], true);
    assert.equal(p["ready"], true);
    process.kill(Number(h["pid"]), "SIGUSR1");
    process.kill(Number(p["pid"]), "SIGUSR1");
    await waitFor(
      () => /Debugger listening on ws:\/\/127\.0\.0\.1:\d+\//.test(plain.stderr()),
      "the plain child's inspector",
      15_000,
    );
    assert.match((await plain.inspector()) ?? "", /^ws:\/\/127\.0\.0\.1:\d+\//);
    // The hardened child got its signal at the same moment; asked after the plain one answered.
    assert.equal(await hardened.inspector(), null);
    assert.doesNotMatch(hardened.stderr(), /Debugger listening/);
    assert.equal(hardened.proc.exitCode, null, "the signal did not end the hardened child either");
  });
});

describe("Piper Link's own commands ignore kill -USR1", () => {
  it("`piper-link mcp` (which acts for its MCP client) opens no inspector; a plain node process does", async () => {
    const e = await newEnv();
    const mcp = spawn(process.execPath, [BIN, "mcp"], { env: e.env, stdio: ["pipe", "pipe", "pipe"] });
    const plain = spawn(process.execPath, ["-e", "process.stdin.resume(); process.stdout.write('ready\\n')"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let mcpOut = "";
    let mcpErr = "";
    let plainOut = "";
    let plainErr = "";
    mcp.stdout.on("data", (c: Buffer) => (mcpOut += c.toString()));
    mcp.stderr.on("data", (c: Buffer) => (mcpErr += c.toString()));
    plain.stdout.on("data", (c: Buffer) => (plainOut += c.toString()));
    plain.stderr.on("data", (c: Buffer) => (plainErr += c.toString()));
    try {
      // The MCP server answers initialize only once the CLI's main() has run (and guarded SIGUSR1).
      mcp.stdin.write(
        `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "probe", version: "1" } } })}\n`,
      );
      await waitFor(() => mcpOut.includes('"id":1'), "the MCP server's answer to initialize", 30_000);
      await waitFor(() => plainOut.includes("ready"), "the plain process", 15_000);
      mcp.kill("SIGUSR1");
      plain.kill("SIGUSR1");
      await waitFor(() => /Debugger listening/.test(plainErr), "the plain process's inspector", 15_000);
      assert.doesNotMatch(mcpErr, /Debugger listening/);
      assert.equal(mcp.exitCode, null, "the signal did not end it either");
    } finally {
      mcp.kill();
      plain.kill();
    }
  });
});

const noSecondUser = secondUserUnavailable();

/** What a second process of TEST_USER gets from /proc/<pid>/environ and /proc/<pid>/mem. */
function attack(pid: number): { environ: string; mem: string } {
  const script = `
    const fs = require("node:fs");
    const pid = process.argv[1];
    const attempt = (fn) => { try { return fn(); } catch (e) { return e.code ?? String(e); } };
    const environ = attempt(() => (fs.readFileSync("/proc/" + pid + "/environ", "latin1").includes("PIPER_TEST_MARKER=") ? "read" : "read, no marker"));
    const mem = attempt(() => {
      const fd = fs.openSync("/proc/" + pid + "/mem", "r");
      const line = fs.readFileSync("/proc/" + pid + "/maps", "utf8").split("\\n").find((l) => / r/.test(" " + (l.split(" ")[1] ?? "")));
      const start = BigInt("0x" + line.split("-")[0]);
      const n = fs.readSync(fd, Buffer.alloc(64), 0, 64, start);
      return n > 0 ? "read" : "empty";
    });
    process.stdout.write(JSON.stringify({ environ, mem }));`;
  const r = spawnSync("runuser", ["-u", TEST_USER, "--", process.execPath, "-e", script, String(pid)], {
    encoding: "utf8",
    timeout: 15_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { environ: string; mem: string };
}

describe(
  "another process of the same (non-root) user cannot read a hardened process",
  { skip: noSecondUser ?? false },
  () => {
    it("/proc/<pid>/mem and environ are refused (EACCES) for a hardened child, read for a plain one", async () => {
      const uid = ensureTestUser();
      const env = { ...process.env, PIPER_TEST_MARKER: "x" };
      const hardened = startChild("runuser", ["-u", TEST_USER, "--", process.execPath, bundle, "hardened"], env);
      const plain = startChild("runuser", ["-u", TEST_USER, "--", process.execPath, bundle, "plain"], env);
      const [h, p] = await Promise.all([hardened.ready, plain.ready]);
      assert.equal(h["uid"], uid, "the target runs as the second user");
      assert.equal(p["uid"], uid);
      assert.deepEqual(h["result"], { notDumpable: true, dumpableFailure: null });

      assert.equal(h["selfCheck"], null, "the self-check passes in a hardened process");
      assert.match(String(p["selfCheck"]), /^it is dumpable \(PR_GET_DUMPABLE gives 1\)$/, "and fails in a plain one");

      assert.deepEqual(attack(Number(h["pid"])), { environ: "EACCES", mem: "EACCES" });
      // The control: the same attacker reads a process that did not harden itself, so the refusal
      // above is the hardening's doing. Yama's ptrace_scope 1 or more also stops /proc/<pid>/mem of
      // a process that is not the reader's descendant (environ needs only read access).
      const scope = existsSync("/proc/sys/kernel/yama/ptrace_scope")
        ? Number(readFileSync("/proc/sys/kernel/yama/ptrace_scope", "utf8"))
        : 0;
      const control = attack(Number(p["pid"]));
      assert.equal(control.environ, "read");
      if (scope === 0) assert.equal(control.mem, "read");
    });
  },
);

describe(
  "a process whose memory was opened again after it hardened itself is found out",
  { skip: noSecondUser ?? false },
  () => {
    it("made dumpable again (as a debugger that seized it at exec does): its self-check fails and its memory is read", async () => {
      ensureTestUser();
      const reopened = startChild("runuser", ["-u", TEST_USER, "--", process.execPath, bundle, "reopened"], {
        ...process.env,
        PIPER_TEST_MARKER: "x",
      });
      const r = await reopened.ready;
      assert.deepEqual(r["result"], { notDumpable: true, dumpableFailure: null }, "it was hardened first");
      assert.deepEqual(r["reopened"], { ok: true });
      assert.equal(r["selfCheck"], "it is dumpable (PR_GET_DUMPABLE gives 1)");
      assert.equal(attack(Number(r["pid"])).environ, "read", "the check is right: its memory is open");
    });

    it(
      "traced (strace, as the same user): its self-check names the tracer, though its prctl worked",
      { skip: spawnSync("sh", ["-c", "command -v strace"]).status === 0 ? false : "needs strace" },
      async () => {
        ensureTestUser();
        const traced = startChild(
          "runuser",
          ["-u", TEST_USER, "--", "strace", "-f", "-qq", "-o", "/dev/null", process.execPath, bundle, "hardened"],
          process.env,
        );
        const r = await traced.ready;
        assert.deepEqual(r["result"], { notDumpable: true, dumpableFailure: null });
        assert.match(String(r["selfCheck"]), /^process \d+ \(strace\) is tracing it$/);
      },
    );

    it("the keys are handed to a child only once its memory is closed: a hardened child gets them, one that stays dumpable is killed without them", () => {
      ensureTestUser();
      const handover = (mode: string): Record<string, unknown> => {
        const r = spawnSync("runuser", ["-u", TEST_USER, "--", process.execPath, bundle, "handover", mode], {
          encoding: "utf8",
          timeout: 30_000,
        });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout) as Record<string, unknown>;
      };
      assert.deepEqual({ ...handover("hardened"), childPid: 0 }, { handover: null, childGot: "keys", childPid: 0 });
      const plain = handover("plain");
      assert.equal(
        plain["handover"],
        "its memory is open to other programs of this user (/proc/<pid>/environ can be read)",
      );
      assert.equal(plain["childGot"], null, "nothing was written to the dumpable child");
      const reopened = handover("reopened");
      assert.equal(reopened["childGot"], null);
      assert.match(String(reopened["handover"]), /environ can be read/);
    });
  },
);

describe("the Link daemon hardens itself", () => {
  it("a started daemon's status does not report `not_dumpable_failed`, and its log does not warn of it", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    assert.deepEqual(
      status.risks.filter((r) => r.code === "not_dumpable_failed"),
      [],
    );
    assert.doesNotMatch(readFileSync(status.logFile, "utf8"), /could not be made non-dumpable/);
  });
});

describe("the Link and its authority refuse to start with Node's debugger enabled", () => {
  it("NODE_OPTIONS with --inspect… (quoted words around it): `start --foreground` exits 2 with the sentence, before it writes anything", async () => {
    const e = await newEnv();
    const r = spawnSync(process.execPath, [BIN, "start", "--foreground", "--port", "0"], {
      env: { ...e.env, NODE_OPTIONS: '--title="piper link" --inspect-port=0' },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr + r.stdout,
      /Piper Link does not run with Node's debugger enabled \(--inspect-port=0 in NODE_OPTIONS\): any program running as you could then attach to it and read the keys it holds\. Remove --inspect-port=0 from NODE_OPTIONS and start it again\./,
    );
    assert.equal(existsSync(e.paths.logDir), false, "no log was written");
  });

  it("--inspect on Node's command line: the background `start` reports the daemon's refusal (exit 2)", async () => {
    const e = await newEnv();
    const r = spawnSync(process.execPath, ["--inspect-port=0", BIN, "start", "--port", "0", "--json"], {
      env: e.env,
      encoding: "utf8",
      timeout: 60_000,
    });
    // The background daemon inherits Node's options from `start` (as NODE_OPTIONS would pass them).
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /debugger enabled \(--inspect-port=0/);
  });

  it("NODE_OPTIONS loading code (--require): `start --foreground` exits 2 with the sentence, and the daemon never served", async () => {
    const e = await newEnv();
    const dir = mkdtempSync(path.join(os.tmpdir(), "piper-link-require-"));
    const marker = path.join(dir, "ran");
    const script = path.join(dir, "x.cjs");
    writeFileSync(script, `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
    const r = spawnSync(process.execPath, [BIN, "start", "--foreground", "--port", "0"], {
      env: { ...e.env, NODE_OPTIONS: `--require ${script}` },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr + r.stdout,
      /Piper Link does not run with code loaded through NODE_OPTIONS \(--require in NODE_OPTIONS\): that code would run inside it and could read the keys it holds\. Remove --require from NODE_OPTIONS and start it again/,
    );
    // The injected code did run (Node loads it first): the refusal stops a naive injection, not one
    // that hides itself, which is the README's residual risk of an environment you can write.
    assert.equal(readFileSync(marker, "utf8"), "ran");
    assert.equal(existsSync(e.paths.logDir), false, "no log was written");
    assert.equal(existsSync(path.join(e.paths.dataDir, "authority")), false, "no authority was started");
  });

  it("NODE_OPTIONS with a heap snapshot on a signal is refused too", async () => {
    const e = await newEnv();
    const r = spawnSync(process.execPath, [BIN, "start", "--foreground", "--port", "0"], {
      env: { ...e.env, NODE_OPTIONS: "--heapsnapshot-signal=SIGUSR2" },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr + r.stdout, /heap snapshots enabled \(--heapsnapshot-signal=SIGUSR2 in NODE_OPTIONS\)/);
  });

  it("the authority (`piper-link authority serve`) refuses too, before reading its data keys", async () => {
    const e = await newEnv();
    const r = spawnSync(
      process.execPath,
      [BIN, "authority", "serve", "--db", `${e.home}/a.db`, "--tls-dir", `${e.home}/tls`],
      {
        env: { ...e.env, NODE_OPTIONS: "--inspect-port=0" },
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr + r.stdout,
      /Piper Link's authority does not run with Node's debugger enabled \(--inspect-port=0 in NODE_OPTIONS\)/,
    );
    assert.equal(existsSync(`${e.home}/a.db`), false);
  });
});

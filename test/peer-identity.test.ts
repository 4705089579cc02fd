// Program identity from the OS (issue 13 item 1) and only this user's processes (issue 13 item 2):
// real child processes (node, python3, a setsid session) connect to a real TCP server or to a real
// Link, and a real second user (`nobody`, via runuser) is refused on every route and upgrade.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import net, { type AddressInfo } from "node:net";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { programKey, sessionKey, type PeerProcess } from "../src/shared/process.js";
import { entryPoint } from "../src/main/core/process/command-line.js";
import { describeLinuxProcess } from "../src/main/core/process/describe-linux.js";
import { createProcPeerResolver } from "../src/main/core/process/peer-resolver-linux.js";
import { parseStat } from "../src/main/core/process/proc-linux.js";
import { parseProcNetTcp, socketOwner } from "../src/main/core/process/socket-table-linux.js";
import {
  findSocketUid,
  peerLineKeys,
  procEndpointForms,
  socketEnds,
  type SocketEnds,
} from "../src/shared/socket-owner.js";
import { checkPeerUser } from "../src/main/core/process/user-guard.js";
import { AGENT_SUBPROTOCOL } from "../src/shared/version.js";
import { startTestLink, tempDir, waitFor, type TestLink } from "./helpers.js";

const linux = process.platform === "linux";

async function statOf(pid: number): Promise<{ ppid: number; session: number; startTime: number }> {
  const stat = parseStat(await fs.readFile(`/proc/${pid}/stat`, "utf8"));
  assert.ok(stat, `stat of ${pid}`);
  return stat;
}

const sockets: net.Socket[] = [];
const pids: number[] = [];

/** Starts `command` in `cwd`, waits for it to connect to `server`, and identifies it from /proc. */
async function identifyChild(
  server: net.Server,
  command: string,
  args: string[],
  cwd: string,
): Promise<{ child: ChildProcess; identity: PeerProcess }> {
  const connected = once(server, "connection") as Promise<[net.Socket]>;
  // PWD as a shell sets it: a relative script counts only when the start folder is confirmed.
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, PWD: cwd },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`${command} ${args.join(" ")} exited with ${String(code)} before connecting`);
  });
  // Exiting later (killed at the end of the test) is expected, not an unhandled rejection.
  exited.catch(() => undefined);
  const [socket] = await Promise.race([connected, exited]);
  const peerPort = socket.remotePort;
  assert.ok(peerPort);
  const ends = socketEnds(socket);
  assert.ok(ends);
  const identity = await createProcPeerResolver().lookup(ends);
  assert.ok(identity, "the peer was identified");
  // The connected process may be a grandchild (setsid sh -c node): it is ended with the socket.
  sockets.push(socket);
  pids.push(identity.pid);
  return { child, identity };
}

describe(
  "program identity from /proc",
  { skip: linux ? false : "Linux only: other platforms are untested here" },
  () => {
    let server: net.Server;
    let port: number;
    let cwd: string;
    const children: ChildProcess[] = [];
    const nodeExe = process.execPath;
    before(async () => {
      server = net.createServer();
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      port = (server.address() as AddressInfo).port;
      // A temporary cwd that is not the test's own, reached through its real path (/proc reports that).
      cwd = await fs.realpath(await tempDir("piper-identity-"));
      const connect = `const s=require("net").connect(Number(process.argv[2]),"127.0.0.1");s.on("error",()=>process.exit(1));setInterval(()=>{},1000);\n`;
      await fs.writeFile(path.join(cwd, "agent.js"), connect);
      await fs.writeFile(path.join(cwd, "preload.mjs"), "");
      const py = `import socket, sys, time\ns = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\ntime.sleep(3600)\n`;
      await fs.writeFile(path.join(cwd, "agent.py"), py);
      await fs.writeFile(path.join(cwd, "agentmod.py"), py);
    });
    after(async () => {
      for (const c of children) c.kill("SIGKILL");
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      for (const s of sockets) s.destroy();
      server.close();
      await fs.rm(cwd, { recursive: true, force: true });
    });

    it("records uid, pid + start time, executable, script, cwd, session and parents of a node agent", async () => {
      const { child, identity } = await identifyChild(
        server,
        nodeExe,
        ["--import", "./preload.mjs", "agent.js", String(port)],
        cwd,
      );
      children.push(child);
      const own = await statOf(process.pid);
      const stat = await statOf(child.pid ?? 0);
      assert.equal(identity.pid, child.pid);
      assert.equal(identity.startTime, stat.startTime);
      assert.equal(identity.uid, process.getuid?.());
      assert.equal(identity.executable, await fs.realpath(nodeExe));
      assert.equal(identity.script, path.join(cwd, "agent.js"), "the script, not the --import value");
      assert.equal(identity.cwd, cwd);
      assert.deepEqual(identity.commandLine, [nodeExe, "--import", "./preload.mjs", "agent.js", String(port)]);
      // Same terminal session as the test runner; its leader is the runner's session leader. A runner
      // whose session leader is outside its PID namespace (a container entered without setsid: /proc
      // says session 0) has no session to name, and the agent has none either (next test, forced).
      if (own.session === 0) {
        assert.equal(identity.sessionId, null);
        assert.equal(identity.sessionLeader, null);
      } else {
        assert.equal(identity.sessionId, own.session);
        assert.equal(identity.sessionLeader?.pid, own.session);
        assert.equal(identity.sessionLeader.startTime, (await statOf(own.session)).startTime);
      }
      const parents = identity.parents ?? [];
      assert.equal(parents[0]?.pid, process.pid, "the test process is the parent");
      assert.equal(parents[0].startTime, own.startTime);
      assert.equal(parents[0].executable, await fs.realpath(process.execPath));
      assert.ok(parents.length <= 8);
      const last = parents.at(-1);
      assert.ok(
        parents.length === 8 || last?.pid === 1 || last?.executable === null,
        `the chain ends at pid 1: ${JSON.stringify(parents)}`,
      );
      for (let i = 1; i < parents.length; i++)
        assert.equal(
          parents[i]?.pid,
          (await statOf(parents[i - 1]?.pid ?? 0)).ppid,
          "each is the parent of the one before",
        );
      assert.deepEqual(
        identity.loads,
        ["--import ./preload.mjs"],
        "what the command line loads is part of the program",
      );
      assert.match(identity.contentHash ?? "", /^[0-9a-f]{64}$/);
      assert.equal(
        programKey(identity),
        JSON.stringify([
          "program",
          identity.executable,
          path.join(cwd, "agent.js"),
          cwd,
          { loads: ["--import ./preload.mjs"], contentHash: identity.contentHash },
        ]),
      );
      assert.equal(
        sessionKey(identity),
        own.session === 0 ? null : `session:${own.session}:${own.session}:${(await statOf(own.session)).startTime}`,
      );
    });

    it("a session id of 0 (the leader lives outside this PID namespace) is no session: nothing to bind to", async (t) => {
      // A new PID namespace whose first process keeps the outer session: inside it, /proc says session 0,
      // as in a container entered without setsid. The identification runs inside, where the Link would.
      const probe = `import { describeLinuxProcess } from ${JSON.stringify(path.resolve("src/main/core/process/describe-linux.ts"))};\nimport { sessionKey } from ${JSON.stringify(path.resolve("src/shared/process.ts"))};\nconst me = await describeLinuxProcess(process.pid);\nconsole.log(JSON.stringify({ sessionId: me.sessionId, sessionLeader: me.sessionLeader, key: sessionKey(me), pid: me.pid }));\n`;
      const file = path.join(cwd, "probe.mts");
      await fs.writeFile(file, probe);
      const run = spawn("unshare", ["--pid", "--fork", "--mount-proc", process.execPath, "--import", "tsx", file], {
        cwd: process.cwd(),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      run.stdout.on("data", (d: Buffer) => (out += d.toString()));
      run.stderr.on("data", (d: Buffer) => (err += d.toString()));
      // 'error' instead of 'exit' when there is no unshare binary at all; the skip below covers it.
      const code = await new Promise<number | null>((resolve) => {
        run.once("exit", (c) => resolve(c));
        run.once("error", (e) => {
          err += e.message;
          resolve(null);
        });
      });
      if (code !== 0 && /Operation not permitted|cannot open|unshare failed|No such file|ENOENT/i.test(err)) {
        // No right to make a PID namespace here; the test above covers the same case on runners that are
        // themselves in one.
        t.skip(`unshare is not permitted here: ${err.trim().split("\n")[0] ?? ""}`);
        return;
      }
      assert.equal(code, 0, err);
      const seen = JSON.parse(out) as {
        sessionId: number | null;
        sessionLeader: unknown;
        key: string | null;
        pid: number;
      };
      assert.equal(seen.pid, 1, "the probe runs inside the new namespace, as its first process");
      assert.deepEqual(
        { sessionId: seen.sessionId, sessionLeader: seen.sessionLeader, key: seen.key },
        { sessionId: null, sessionLeader: null, key: null },
      );
    });

    it("records the script of a python3 agent, and `-m module`", async () => {
      const script = await identifyChild(server, "python3", ["-u", "agent.py", String(port)], cwd);
      children.push(script.child);
      assert.match(path.basename(script.identity.executable ?? ""), /^python3/);
      assert.equal(script.identity.script, path.join(cwd, "agent.py"));
      assert.equal(script.identity.cwd, cwd);
      assert.equal(script.identity.uid, process.getuid?.());
      const mod = await identifyChild(server, "python3", ["-m", "agentmod", String(port)], cwd);
      children.push(mod.child);
      assert.equal(mod.identity.script, "-m agentmod");
      assert.notEqual(programKey(mod.identity), programKey(script.identity), "another entry point is another program");
    });

    it("records a new terminal session started with setsid: the leader and the parent chain through it", async () => {
      // `; true` keeps sh from exec'ing node, so sh stays the session leader and node's parent.
      const { child, identity } = await identifyChild(
        server,
        "setsid",
        ["sh", "-c", `"${nodeExe}" agent.js ${port}; true`],
        cwd,
      );
      children.push(child);
      const leaderPid = child.pid ?? 0;
      const own = await statOf(process.pid);
      assert.equal(identity.sessionId, leaderPid, "sh called setsid: the session is its own");
      assert.notEqual(identity.sessionId, own.session);
      assert.equal(identity.sessionLeader?.pid, leaderPid);
      assert.equal(identity.sessionLeader.startTime, (await statOf(leaderPid)).startTime);
      assert.equal(identity.sessionLeader.executable, await fs.realpath("/bin/sh"));
      assert.equal(identity.parents?.[0]?.pid, leaderPid);
      assert.equal(identity.parents[1]?.pid, process.pid);
      assert.equal(identity.script, path.join(cwd, "agent.js"));
      const sameProgramElsewhere = {
        ...identity,
        sessionId: own.session,
        sessionLeader: { pid: own.session, startTime: 1, executable: null },
      };
      assert.equal(programKey(sameProgramElsewhere), programKey(identity), "the program key ignores the session");
      assert.notEqual(sessionKey(sameProgramElsewhere), sessionKey(identity));
      // Once the leader exits, the session has no leader any more and nothing may bind to it.
      child.kill("SIGKILL");
      await once(child, "exit");
      const after = await describeLinuxProcess(identity.pid);
      assert.equal(after.sessionLeader, null);
      assert.equal(sessionKey(after), null);
    });

    it("the Link records the identity of every agent connection", async () => {
      const t = await startTestLink();
      const ws = createRequire(import.meta.url).resolve("ws");
      const code = `const W=require(process.argv[3]);const w=new W(process.argv[2],"piper-link.v1");w.on("open",()=>w.send(JSON.stringify({type:"hello",id:1,protocol:1,agent:{clientId:"agent_id",name:"Id"}})));setInterval(()=>{},1000)`;
      await fs.writeFile(path.join(cwd, "ws-agent.js"), code);
      const child = spawn(nodeExe, ["ws-agent.js", t.url, ws], { cwd, stdio: "ignore" });
      children.push(child);
      try {
        await waitFor(
          () => t.link.status().agents.some((a) => a.clientId === "agent_id" && a.process !== null),
          "the agent to be identified",
        );
        const agent = t.link.status().agents.find((a) => a.clientId === "agent_id");
        assert.equal(agent?.process?.script, path.join(cwd, "ws-agent.js"));
        assert.equal(agent.process.uid, process.getuid?.());
        assert.equal(agent.process.parents?.[0]?.pid, process.pid);
        // The runner's session (the agent inherits it), or none when /proc says 0 (see the first test).
        const own = await statOf(process.pid);
        assert.equal(agent.process.sessionId, own.session === 0 ? null : own.session);
      } finally {
        child.kill("SIGKILL");
        await t.stop();
      }
    });
  },
);

describe("entry points of interpreters", () => {
  const cases: Array<[string, string[], string | null]> = [
    ["/usr/bin/node", ["node", "--import", "tsx", "src/a.ts"], "/w/src/a.ts"],
    ["/usr/bin/node", ["node", "--import=tsx", "-r", "dotenv/config", "./a.js", "--flag"], "/w/a.js"],
    ["/usr/bin/node", ["node", "-e", "console.log(1)"], "[inline]"],
    ["/usr/bin/node", ["node"], null],
    ["/usr/bin/node", ["node", "--", "-weird.js"], "/w/-weird.js"],
    ["/usr/bin/python3.12", ["python3", "-u", "-W", "ignore", "tool.py", "x"], "/w/tool.py"],
    ["/usr/bin/python3.12", ["python3", "-m", "http.server", "8000"], "-m http.server"],
    ["/usr/bin/python3.12", ["python3", "-mhttp.server"], "-m http.server"],
    ["/usr/bin/python3.12", ["python3", "-uc", "print(1)"], "[inline]"],
    ["/usr/bin/python3.12", ["python3", "/abs/tool.py"], "/abs/tool.py"],
    ["/usr/local/bin/bun", ["bun", "run", "x.ts"], "/w/x.ts"],
    ["/usr/local/bin/bun", ["bun", "run", "dev"], "dev"],
    ["/usr/local/bin/bun", ["bun", "agent.ts"], "/w/agent.ts"],
    ["/usr/local/bin/deno", ["deno", "run", "--allow-net", "-c", "deno.json", "main.ts"], "/w/main.ts"],
    ["/usr/local/bin/deno", ["deno", "eval", "1"], "[inline]"],
    ["/usr/bin/ruby", ["ruby", "-I", "lib", "bin/agent"], "/w/bin/agent"],
    ["/usr/bin/perl", ["perl", "-w", "agent.pl"], "/w/agent.pl"],
    ["/usr/bin/bash", ["bash", "-e", "-o", "pipefail", "run.sh"], "/w/run.sh"],
    ["/usr/bin/bash", ["bash", "-c", "printenv"], "[inline]"],
    ["/usr/bin/dash", ["/bin/sh", "./x.sh"], "/w/x.sh"],
    ["/usr/bin/curl", ["curl", "http://x"], null],
  ];
  for (const [exe, argv, want] of cases) {
    it(`${argv.join(" ")} -> ${String(want)}`, () => assert.equal(entryPoint(exe, argv, "/w"), want));
  }
});

describe("the socket owner from /proc/net/tcp", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:7AB5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0",
    "   1: 0100007F:7AB5 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1",
    "   2: 0100007F:D431 0100007F:7AB5 01 00000000:00000000 00:00000000 00000000 65534        0 3 1 0000000000000000 20 4 30 10 -1",
    "   3: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 20 4 30 10 -1",
  ].join("\n");
  const ends = (
    peerPort: number,
    localPort: number,
    peerAddress = "127.0.0.1",
    localAddress = "127.0.0.1",
  ): SocketEnds => ({ peerAddress, peerPort, localAddress, localPort });
  it("takes the uid of the peer's end (local = peer endpoint, remote = link endpoint), not the Link's own end", () => {
    assert.equal(findSocketUid(text, ends(0xd431, 0x7ab5)), 65534);
    assert.equal(findSocketUid(text, ends(0xd431, 0x1f90)), 1000);
    assert.equal(findSocketUid(text, ends(0xd432, 0x7ab5)), null);
  });
  it("matches whole endpoints: another user on the same source port from another loopback address gets their own line", () => {
    // This user's agent 127.0.0.1:D431 -> Link 127.0.0.1:7AB5, and another user's process that bound
    // the same port on 127.0.0.2 and on ::1 (both allowed by the kernel) while it is open.
    const shared = [
      text.split("\n")[0] ?? "",
      "   0: 0100007F:D431 0100007F:7AB5 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0000000000000000 20 4 30 10 -1",
      "   1: 0200007F:D431 0100007F:7AB5 01 00000000:00000000 00:00000000 00000000 65534        0 6 1 0000000000000000 20 4 30 10 -1",
    ].join("\n");
    const shared6 = [
      text.split("\n")[0] ?? "",
      "   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:7AB5 01 00000000:00000000 00:00000000 00000000 65534 0 7 1 0 20 4 30 10 -1",
    ].join("\n");
    assert.equal(findSocketUid(shared, ends(0xd431, 0x7ab5)), 1000);
    assert.equal(findSocketUid(shared, ends(0xd431, 0x7ab5, "127.0.0.2")), 65534);
    assert.equal(findSocketUid(shared, ends(0xd431, 0x7ab5, "::1", "::1")), null);
    assert.equal(findSocketUid(shared6, ends(0xd431, 0x7ab5, "::1", "::1")), 65534);
    assert.equal(findSocketUid(shared6, ends(0xd431, 0x7ab5)), null);
    // A dual-stack server names an IPv4 peer ::ffff:127.0.0.1; the peer's own socket is listed in tcp.
    assert.equal(findSocketUid(shared, ends(0xd431, 0x7ab5, "::ffff:127.0.0.1", "::ffff:127.0.0.1")), 1000);
    const inodes = parseProcNetTcp(shared);
    assert.equal(inodes.get(peerLineKeys(ends(0xd431, 0x7ab5, "127.0.0.2"))[0] ?? ""), "6");
  });
  it(
    "writes addresses as /proc does (32-bit words in host byte order)",
    { skip: os.endianness() === "LE" ? false : "the expected text is little-endian" },
    () => {
      assert.deepEqual(procEndpointForms("127.0.0.1", 0x1f90), ["0100007F:1F90"]);
      assert.deepEqual(procEndpointForms("::1", 80), ["00000000000000000000000001000000:0050"]);
      assert.deepEqual(procEndpointForms("::ffff:127.0.0.1", 80), [
        "0000000000000000FFFF00000100007F:0050",
        "0100007F:0050",
      ]);
      assert.deepEqual(procEndpointForms("fe80::1:2%lo", 1), ["000080FE000000000000000002000100:0001"]);
      for (const bad of ["", "localhost", "1.2.3", "256.1.1.1", "1::2::3", "::g", "1:2:3:4:5:6:7:8:9"])
        assert.deepEqual(procEndpointForms(bad, 1), [], bad);
    },
  );
  it("lookups arriving together share reads of the tables, each answered from its own line, and a later lookup reads again", async () => {
    const root = await tempDir("piper-proc-");
    await fs.mkdir(path.join(root, "net"));
    const line = (i: number, peerPort: number, uid: number): string =>
      `   ${i}: 0100007F:${peerPort.toString(16).toUpperCase()} 0100007F:7AB5 01 00000000:00000000 00:00000000 00000000 ${uid} 0 ${i + 10} 1 0 20 4 30 10 -1`;
    const ports = Array.from({ length: 300 }, (_, i) => 0x9000 + i);
    await fs.writeFile(
      path.join(root, "net", "tcp"),
      [text.split("\n")[0], ...ports.map((p, i) => line(i, p, 1000 + i))].join("\n"),
    );
    // No tcp6 file: one readable table is enough to say "not found" rather than "unsupported".
    const owners = await Promise.all(ports.map((p) => socketOwner(ends(p, 0x7ab5), root)));
    assert.deepEqual(
      owners,
      ports.map((_, i) => ({ uid: 1000 + i })),
    );
    assert.deepEqual(await socketOwner(ends(0x8fff, 0x7ab5), root), { uid: null, reason: "not_found" });
    // A connection that appears after earlier reads is found: every lookup reads after it was asked.
    await fs.appendFile(path.join(root, "net", "tcp"), `\n${line(300, 0x8fff, 4242)}`);
    assert.deepEqual(await socketOwner(ends(0x8fff, 0x7ab5), root), { uid: 4242 });
    assert.deepEqual(await socketOwner(ends(0x8fff, 0x7ab5), path.join(root, "absent")), {
      uid: null,
      reason: "unsupported",
    });
    assert.deepEqual(await socketOwner(null, root), { uid: null, reason: "not_found" });
  });
  it("decides: own uid allowed, another refused with foreign_user, unknown on Linux refused, no /proc allowed unverified", () => {
    assert.deepEqual(checkPeerUser({ uid: 1000 }, 1000), { allow: true, unverified: false });
    const foreign = checkPeerUser({ uid: 65534 }, 1000);
    assert.equal(foreign.allow ? null : foreign.rejection.code, "foreign_user");
    assert.equal(checkPeerUser({ uid: null, reason: "not_found" }, 1000).allow, false);
    assert.deepEqual(checkPeerUser({ uid: null, reason: "unsupported" }, 1000), { allow: true, unverified: true });
  });
});

/** Runs `argv` as the `nobody` user and collects its stdout. */
async function runAsNobody(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("runuser", ["-u", "nobody", "--", ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stdout, stderr };
}

const UPGRADE = [
  "-H",
  "Connection: Upgrade",
  "-H",
  "Upgrade: websocket",
  "-H",
  "Sec-WebSocket-Version: 13",
  "-H",
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  "-H",
  `Sec-WebSocket-Protocol: ${AGENT_SUBPROTOCOL}`,
];

const isRoot = process.getuid?.() === 0;
describe(
  "only this user's processes",
  {
    skip: !linux
      ? "Linux only"
      : !isRoot
        ? "needs root to run a request as a second user (runuser -u nobody); not root here"
        : false,
  },
  () => {
    let t: TestLink;
    before(async () => {
      t = await startTestLink({ instanceId: "inst_uid_guard_0001" });
    });
    after(async () => {
      await t.stop();
    });

    for (const route of ["/piper-link-context", "/healthz", "/nothing-here"]) {
      it(`refuses ${route} to another user's process with 403 foreign_user, before anything is served`, async () => {
        const r = await runAsNobody(["curl", "-sS", "-w", "\n%{http_code}", `http://127.0.0.1:${t.port}${route}`]);
        const [body = "", status] = r.stdout.split("\n");
        assert.equal(status, "403", r.stdout);
        assert.equal((JSON.parse(body) as { error: string }).error, "foreign_user");
        assert.doesNotMatch(body, /inst_uid_guard/);
      });
    }

    it("refuses another user over ::1 too (/proc/net/tcp6)", async (ctx) => {
      // This user is served over ::1 (or the machine has no ::1, and there is nothing to test).
      const own = await fetch(`http://[::1]:${t.port}/healthz`).then(
        (r) => r.status,
        () => null,
      );
      if (own === null) return ctx.skip("no ::1 on this machine");
      assert.equal(own, 200);
      const r = await runAsNobody([
        "curl",
        "-sS",
        "-g",
        "-w",
        "\n%{http_code}",
        `http://[::1]:${t.port}/piper-link-context`,
      ]);
      assert.equal(r.stdout.split("\n")[1], "403", r.stdout);
    });

    it("refuses another user who borrows this user's source port from another loopback address", async () => {
      // This user's connection stays open on 127.0.0.1:P; nobody binds 127.0.0.2:P (the kernel allows it)
      // and connects to the Link. Matching /proc lines by ports alone would read this user's line.
      const mine = net.connect({ host: "127.0.0.1", port: t.port });
      await once(mine, "connect");
      try {
        const port = String(mine.localPort);
        // A loopback address per try: the first try's endpoint lingers in TIME_WAIT.
        for (const [target, from] of [
          ["/piper-link-context", "127.0.0.2"],
          ["/v1/link", "127.0.0.3"],
        ] as const) {
          const r = await runAsNobody([
            "curl",
            "-sS",
            "-i",
            "--max-time",
            "10",
            "--interface",
            from,
            "--local-port",
            port,
            ...(target === "/v1/link" ? UPGRADE : []),
            `http://127.0.0.1:${t.port}${target}`,
          ]);
          assert.match(r.stdout, /^HTTP\/1\.1 403 /, `${target}: ${r.stdout}${r.stderr}`);
          assert.match(r.stdout, /"error":"foreign_user"/);
          assert.doesNotMatch(r.stdout, /inst_uid_guard/);
        }
      } finally {
        mine.destroy();
      }
    });

    it("refuses another user's WebSocket upgrade", async () => {
      const r = await runAsNobody([
        "curl",
        "-sS",
        "-i",
        "--max-time",
        "10",
        ...UPGRADE,
        `http://127.0.0.1:${t.port}/v1/link`,
      ]);
      assert.match(r.stdout, /^HTTP\/1\.1 403 /);
      assert.match(r.stdout, /"error":"foreign_user"/);
      assert.equal(t.link.status().agents.length, 0);
    });

    it("serves the same requests and upgrade to this user's process", async () => {
      const res = await fetch(`http://127.0.0.1:${t.port}/piper-link-context`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { instanceId: "inst_uid_guard_0001" });
      const ws = new WebSocket(t.url, AGENT_SUBPROTOCOL);
      await once(ws, "open");
      ws.close();
    });
  },
);

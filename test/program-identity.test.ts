// "For this program" means that program: the inputs that borrowed another program's identity, tried
// with real processes (node, python3) on real TCP connections, identified from /proc the way the Link
// does. Each case failed on the Link before these checks: the same key as the approved program, or
// an identity where there should be none.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { isOwnCommand } from "../src/main/core/process/acting-for.js";
import { codeLoads, readCommand } from "../src/main/core/process/command-line.js";
import { identifyLinuxProcess, recheckLinuxProcess } from "../src/main/core/process/identify-linux.js";
import { createProcPeerResolver } from "../src/main/core/process/peer-resolver-linux.js";
import { parseEnviron } from "../src/main/core/process/proc-linux.js";
import { identityMemoryKey, programKey, programPathKey, sessionKey, type PeerProcess } from "../src/shared/process.js";
import { socketEnds } from "../src/shared/socket-owner.js";
import { tempDir, waitFor } from "./helpers.js";

const linux = process.platform === "linux";
const NODE = process.execPath;

describe("what a program is, read with each interpreter's option grammar", () => {
  const cases: Array<[string, string[], string | null]> = [
    ["/usr/bin/node", ["node", "--eval=process.exit()", "agent.mjs"], "[inline]"],
    ["/usr/bin/node", ["node", "--print=1", "agent.mjs"], "[inline]"],
    ["/usr/bin/python3", ["python3", "-cimport os", "agent.py"], "[inline]"],
    ["/usr/bin/python3", ["python3", "-ucimport os"], "[inline]"],
    ["/usr/bin/python3", ["python3", "-Wignore", "agent.py"], "/w/agent.py"],
    ["/usr/bin/python3", ["python3", "-mpkg.mod"], "-m pkg.mod"],
    ["/usr/bin/node", ["node", "--require=./evil.cjs", "agent.mjs"], "/w/agent.mjs"],
  ];
  for (const [exe, argv, want] of cases)
    it(`${argv.join(" ")} -> ${String(want)}`, () => assert.equal(readCommand(exe, argv, "/w").script, want));

  it("code-loading options and environment are found, as written, and ignored where the interpreter ignores them", () => {
    const env = parseEnviron(
      [
        "NODE_OPTIONS=--require=/x/evil.cjs",
        "PYTHONPATH=/x",
        "PYTHONSTARTUP=/x/s.py",
        "LD_PRELOAD=/x/e.so",
        "HOME=/h",
        "PYTHONUNBUFFERED=1",
        "",
      ].join("\0"),
    );
    const node = [
      "node",
      "-r",
      "./evil.cjs",
      "--import=./i.mjs",
      "--loader",
      "./l.mjs",
      "--experimental-loader=./e.mjs",
      "agent.mjs",
    ];
    const facts = readCommand("/usr/bin/node", node, "/w");
    assert.equal(facts.script, "/w/agent.mjs");
    assert.deepEqual(codeLoads("/usr/bin/node", node, env, facts.options), [
      "-r ./evil.cjs",
      "--import=./i.mjs",
      "--loader ./l.mjs",
      "--experimental-loader=./e.mjs",
      "LD_PRELOAD=/x/e.so",
      "NODE_OPTIONS=--require=/x/evil.cjs",
    ]);
    // HOME decides Python's user site-packages, whose .pth files run code at start.
    assert.deepEqual(codeLoads("/usr/bin/python3", ["python3", "agent.py"], env, []), [
      "HOME=/h",
      "LD_PRELOAD=/x/e.so",
      "PYTHONPATH=/x",
      "PYTHONSTARTUP=/x/s.py",
    ]);
    // OpenSSL's configuration can load a shared object into any program that uses TLS.
    const openssl = parseEnviron(["OPENSSL_CONF=/x/evil.cnf", ""].join("\0"));
    assert.deepEqual(codeLoads("/usr/bin/node", ["node", "agent.mjs"], openssl, []), ["OPENSSL_CONF=/x/evil.cnf"]);
    const viaOption = ["node", "--openssl-config=/x/evil.cnf", "agent.mjs"];
    const optionFacts = readCommand("/usr/bin/node", viaOption, "/w");
    assert.equal(optionFacts.script, "/w/agent.mjs");
    assert.deepEqual(codeLoads("/usr/bin/node", viaOption, new Map(), optionFacts.options), [
      "--openssl-config=/x/evil.cnf",
    ]);
    // python -I (isolated) and -E ignore PYTHON* variables; the dynamic linker does not.
    assert.deepEqual(codeLoads("/usr/bin/python3", ["python3", "-I", "agent.py"], env, []), ["LD_PRELOAD=/x/e.so"]);
    assert.deepEqual(codeLoads("/usr/bin/python3", ["python3", "-uE", "agent.py"], env, []), ["LD_PRELOAD=/x/e.so"]);
  });
});

interface Started {
  child: ChildProcess;
  identity: PeerProcess;
  socket: net.Socket;
}

describe(
  "program identity against programs that borrow another's",
  { skip: linux ? false : "Linux only: other platforms are untested here" },
  () => {
    let server: net.Server;
    let port: number;
    let approved: string;
    let elsewhere: string;
    const started: Started[] = [];
    const resolver = createProcPeerResolver();

    before(async () => {
      server = net.createServer();
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      port = (server.address() as AddressInfo).port;
      approved = await fs.realpath(await tempDir("piper-approved-"));
      elsewhere = await fs.realpath(await tempDir("piper-elsewhere-"));
      const agent = `import net from "node:net";\nconst s = net.connect(Number(process.argv[2]), "127.0.0.1");\ns.on("error", () => process.exit(1));\nsetInterval(() => {}, 1000);\n`;
      await fs.writeFile(path.join(approved, "agent.mjs"), agent);
      await fs.writeFile(path.join(approved, "evil.cjs"), "// loaded into the approved program\n");
      await fs.writeFile(
        path.join(approved, "agent.py"),
        `import socket, sys, time\ns = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\ntime.sleep(3600)\n`,
      );
      await fs.mkdir(path.join(approved, "pkg"));
      await fs.writeFile(path.join(approved, "pkg", "__init__.py"), "");
      await fs.writeFile(
        path.join(approved, "pkg", "mod.py"),
        `import socket, sys, time\ns = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\ntime.sleep(3600)\n`,
      );
      // Another folder with a package of the same name, put first by PYTHONPATH.
      await fs.mkdir(path.join(elsewhere, "pkg"));
      await fs.writeFile(path.join(elsewhere, "pkg", "__init__.py"), "");
      await fs.writeFile(
        path.join(elsewhere, "pkg", "mod.py"),
        `# another module\nimport socket, sys, time\ns = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\ntime.sleep(3600)\n`,
      );
      await fs.writeFile(path.join(elsewhere, "sitecustomize.py"), "# runs before the approved script\n");
    });

    after(async () => {
      for (const s of started) {
        s.socket.destroy();
        // Each program runs in a process group of its own, with whatever it started.
        try {
          process.kill(-(s.child.pid ?? 0), "SIGKILL");
        } catch {
          // gone
        }
      }
      server.close();
      await fs.rm(approved, { recursive: true, force: true });
      await fs.rm(elsewhere, { recursive: true, force: true });
    });

    /** Starts a program in `cwd` (PWD set as a shell would, unless `env` says otherwise), waits for its connection, identifies it. */
    async function start(
      command: string,
      args: string[],
      cwd: string,
      env: Record<string, string> = {},
    ): Promise<Started> {
      const connected = once(server, "connection") as Promise<[net.Socket]>;
      const child = spawn(command, args, {
        cwd,
        env: { ...process.env, PWD: cwd, ...env },
        stdio: ["ignore", "ignore", "inherit"],
        detached: true,
      });
      const exited = once(child, "exit").then(([code]) => {
        throw new Error(`${command} ${args.join(" ")} exited with ${String(code)} before connecting`);
      });
      exited.catch(() => undefined);
      const [socket] = await Promise.race([connected, exited]);
      const ends = socketEnds(socket);
      assert.ok(ends);
      const identity = await resolver.lookup(ends);
      assert.ok(identity, `${command} ${args.join(" ")} was identified`);
      const s = { child, identity, socket };
      started.push(s);
      return s;
    }

    it("a socket held by two processes (python passed it to an approved node child) is none of them", async () => {
      const plain = await start(NODE, ["agent.mjs", String(port)], approved);
      assert.ok(programKey(plain.identity));
      // python3 connects, then starts the approved `node agent.mjs` with the socket inherited (as fd 3),
      // and keeps it open itself: the first holder the old scan found was either of them.
      const holder = [
        "import socket, subprocess, sys, time",
        `s = socket.create_connection(("127.0.0.1", ${port}))`,
        "os_fd = s.fileno()",
        "import os; os.set_inheritable(os_fd, True)",
        `subprocess.Popen([${JSON.stringify(NODE)}, "-e", "setInterval(()=>{},1000)"], pass_fds=[os_fd])`,
        "time.sleep(3600)",
      ].join("\n");
      const connected = once(server, "connection") as Promise<[net.Socket]>;
      const child = spawn("python3", ["-c", holder], { cwd: approved, stdio: "ignore", detached: true });
      const [socket] = await connected;
      const ends = socketEnds(socket);
      assert.ok(ends);
      // The child may not have started yet: wait until the socket has its second holder.
      let identity: PeerProcess | null = null;
      await waitFor(async () => {
        identity = await resolver.lookup(ends);
        return (identity?.sharedWith ?? []).length > 0;
      }, "both holders of the socket");
      assert.ok(identity);
      started.push({ child, identity, socket });
      const shared: PeerProcess = identity;
      assert.equal(programKey(shared), null, "no program binding");
      assert.equal(sessionKey(shared), null, "no session binding");
      assert.notEqual(identityMemoryKey(shared), identityMemoryKey({ ...shared, sharedWith: [] }));
      // Piper Link's own command is honoured only as the sole holder of its connection.
      assert.equal(
        isOwnCommand(
          { ...shared, script: "/own/bin/piper-link.js", commandLine: ["node", "/own/bin/piper-link.js"], loads: [] },
          ["/own/bin/piper-link.js"],
          () => "",
        ),
        false,
      );
      assert.equal(
        isOwnCommand(
          {
            ...shared,
            sharedWith: [],
            script: "/own/bin/piper-link.js",
            commandLine: ["node", "/own/bin/piper-link.js"],
            loads: [],
          },
          ["/own/bin/piper-link.js"],
          () => "",
        ),
        true,
      );
    });

    it("code-loading options and environment make another program than the approved one", async () => {
      const node = await start(NODE, ["agent.mjs", String(port)], approved);
      const python = await start("python3", ["agent.py", String(port)], approved);
      const nodeKey = programKey(node.identity);
      const pythonKey = programKey(python.identity);
      assert.ok(nodeKey && pythonKey);
      const variants: Array<[string, () => Promise<Started>, string]> = [
        [
          "node --eval=CODE agent.mjs",
          () => start(NODE, [`--eval=import("./agent.mjs")`, "agent.mjs", String(port)], approved),
          nodeKey,
        ],
        ["node -r ./evil.cjs", () => start(NODE, ["-r", "./evil.cjs", "agent.mjs", String(port)], approved), nodeKey],
        ["node --import", () => start(NODE, ["--import", "./evil.cjs", "agent.mjs", String(port)], approved), nodeKey],
        [
          "node --loader",
          () => start(NODE, ["--no-warnings", "--loader=./evil.cjs", "agent.mjs", String(port)], approved),
          nodeKey,
        ],
        [
          "NODE_OPTIONS=--require",
          () =>
            start(NODE, ["agent.mjs", String(port)], approved, {
              NODE_OPTIONS: `--require=${path.join(approved, "evil.cjs")}`,
            }),
          nodeKey,
        ],
        [
          "LD_PRELOAD",
          () => start(NODE, ["agent.mjs", String(port)], approved, { LD_PRELOAD: "/lib/x86_64-linux-gnu/libc.so.6" }),
          nodeKey,
        ],
        [
          "python3 -cCODE (glued)",
          () =>
            start(
              "python3",
              [`-cimport runpy, sys; sys.argv = ["agent.py", "${port}"]; runpy.run_path("agent.py")`],
              approved,
            ),
          pythonKey,
        ],
        [
          "PYTHONPATH with sitecustomize.py",
          () => start("python3", ["agent.py", String(port)], approved, { PYTHONPATH: elsewhere }),
          pythonKey,
        ],
        [
          "PYTHONSTARTUP",
          () =>
            start("python3", ["agent.py", String(port)], approved, {
              PYTHONSTARTUP: path.join(elsewhere, "sitecustomize.py"),
            }),
          pythonKey,
        ],
      ];
      // One at a time: each start waits for its own connection.
      for (const [name, run, approvedKey] of variants) {
        const { identity } = await run();
        assert.notEqual(programKey(identity), approvedKey, `${name} is not the approved program`);
        assert.ok(
          identity.script === "[inline]" || (identity.loads ?? []).length > 0,
          `${name}: the prompt shows what it loads (${JSON.stringify(identity.loads)})`,
        );
      }
    });

    it("python3 -m pkg.mod is bound to the module's file, not its name: another PYTHONPATH is another program", async () => {
      const own = await start("python3", ["-m", "pkg.mod", String(port)], approved);
      const other = await start("python3", ["-m", "pkg.mod", String(port)], approved, { PYTHONPATH: elsewhere });
      assert.equal(own.identity.script, "-m pkg.mod");
      assert.notEqual(programKey(other.identity), programKey(own.identity));
      // Even with the same PYTHONPATH text, the hash follows the file the module resolves to.
      await fs.writeFile(
        path.join(approved, "pkg", "mod.py"),
        `# changed\nimport socket, sys, time\ns = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\ntime.sleep(3600)\n`,
      );
      const changed = await start("python3", ["-m", "pkg.mod", String(port)], approved);
      assert.notEqual(changed.identity.contentHash, own.identity.contentHash);
    });

    it("a relative script counts only when the folder it started from is confirmed (a program that changed folder is unverifiable)", async () => {
      // The other agent.mjs starts in another folder, moves into the approved one, then connects.
      const mover = `import net from "node:net";\nprocess.chdir(${JSON.stringify(approved)});\nconst s = net.connect(Number(process.argv[2]), "127.0.0.1");\nsetInterval(() => {}, 1000);\n`;
      await fs.writeFile(path.join(elsewhere, "agent.mjs"), mover);
      const moved = await start(NODE, ["agent.mjs", String(port)], elsewhere);
      assert.equal(moved.identity.cwd, approved);
      assert.equal(programKey(moved.identity), null, "not the approved agent.mjs");
      assert.match(moved.identity.unverifiable ?? "", /relative path/);
      // By its full path, the script is known wherever the process moves.
      const absolute = await start(NODE, [path.join(elsewhere, "agent.mjs"), String(port)], elsewhere);
      assert.equal(absolute.identity.unverifiable, null);
      assert.equal(absolute.identity.script, path.join(elsewhere, "agent.mjs"));
    });

    it("new content in the approved script is the same program by path, changed: another key", async () => {
      const before = await start(NODE, ["agent.mjs", String(port)], approved);
      await fs.appendFile(path.join(approved, "agent.mjs"), "// replaced by something else\n");
      const afterChange = await start(NODE, ["agent.mjs", String(port)], approved);
      assert.equal(programPathKey(afterChange.identity), programPathKey(before.identity));
      assert.notEqual(programKey(afterChange.identity), programKey(before.identity));
    });

    it("a process that exec'd another program (same pid and start time) is re-checked into the new program", async () => {
      // python3 connects with an inheritable socket, then execs node running another script on it.
      await fs.writeFile(path.join(elsewhere, "after-exec.mjs"), "setInterval(() => {}, 1000);\n");
      const code = [
        "import os, socket, sys, time",
        `s = socket.create_connection(("127.0.0.1", ${port}))`,
        "os.set_inheritable(s.fileno(), True)",
        "sys.stdin.readline()",
        `os.execv(${JSON.stringify(NODE)}, [${JSON.stringify(NODE)}, ${JSON.stringify(path.join(elsewhere, "after-exec.mjs"))}])`,
      ].join("\n");
      const connected = once(server, "connection") as Promise<[net.Socket]>;
      const child = spawn("python3", ["-c", code], {
        cwd: approved,
        stdio: ["pipe", "ignore", "ignore"],
        detached: true,
      });
      const [socket] = await connected;
      const ends = socketEnds(socket);
      assert.ok(ends);
      const identity = await resolver.lookup(ends);
      assert.ok(identity);
      started.push({ child, identity, socket });
      assert.equal(await recheckLinuxProcess(identity), identity, "nothing changed: the same identity");
      child.stdin.write("\n");
      let now: PeerProcess | null = identity;
      await waitFor(async () => {
        now = await recheckLinuxProcess(identity);
        return now !== null && now.executable !== identity.executable;
      }, "the exec to be seen");
      assert.ok(now);
      const fresh: PeerProcess = now;
      assert.equal(fresh.pid, identity.pid);
      assert.equal(fresh.startTime, identity.startTime);
      assert.equal(fresh.script, path.join(elsewhere, "after-exec.mjs"));
      assert.notEqual(
        identityMemoryKey(fresh),
        identityMemoryKey(identity),
        "nothing remembered for the old program serves the new one",
      );
    });

    it("a session's end is seen on the next check, not only by the sweep", async () => {
      // A session of its own: python3 leads it (setsid) and starts the agent, then exits when told.
      const code = [
        "import os, subprocess, sys",
        `p = subprocess.Popen([${JSON.stringify(NODE)}, "agent.mjs", "${port}"], env=dict(os.environ, PWD=os.getcwd()))`,
        "sys.stdin.readline()",
      ].join("\n");
      const connected = once(server, "connection") as Promise<[net.Socket]>;
      const leader = spawn("setsid", ["python3", "-c", code], { cwd: approved, stdio: ["pipe", "ignore", "ignore"] });
      const [socket] = await connected;
      const ends = socketEnds(socket);
      assert.ok(ends);
      const identity = await resolver.lookup(ends);
      assert.ok(identity);
      started.push({ child: leader, identity, socket });
      assert.ok(sessionKey(identity), "in a session");
      leader.stdin.write("\n");
      await once(leader, "exit");
      const now = await recheckLinuxProcess(identity);
      assert.ok(now, "the agent still runs");
      assert.equal(sessionKey(now), null, "its session ended with its leader");
      try {
        process.kill(identity.pid, "SIGKILL");
      } catch {
        // gone
      }
    });

    // root reads every process's /proc entries, so only another user shows what the Link sees.
    it(
      "a process whose /proc entries cannot be read (non-dumpable) is unidentified, not some program",
      { skip: process.getuid?.() === 0 ? "root reads non-dumpable processes' /proc entries" : false },
      async () => {
        const code = [
          "import ctypes, socket, sys, time",
          "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)",
          `s = socket.create_connection(("127.0.0.1", ${port}))`,
          "time.sleep(3600)",
        ].join("\n");
        const connected = once(server, "connection") as Promise<[net.Socket]>;
        const child = spawn("python3", ["-c", code], { cwd: approved, stdio: "ignore" });
        const [socket] = await connected;
        const ends = socketEnds(socket);
        assert.ok(ends);
        assert.equal(await resolver.lookup(ends), null);
        assert.equal(await identifyLinuxProcess(child.pid ?? -1), null);
        socket.destroy();
        child.kill("SIGKILL");
      },
    );

    it("a flood of connections from one process costs one read of that process per scan, and another process is identified in the same scans", async () => {
      const flood = `import net from "node:net";\nfor (let i = 0; i < 300; i++) net.connect(Number(process.argv[2]), "127.0.0.1").on("error", () => {});\nsetInterval(() => {}, 1000);\n`;
      await fs.writeFile(path.join(approved, "flood.mjs"), flood);
      const sockets: net.Socket[] = [];
      const onConnection = (s: net.Socket): void => void sockets.push(s);
      server.on("connection", onConnection);
      const child = spawn(NODE, [path.join(approved, "flood.mjs"), String(port)], { cwd: approved, stdio: "ignore" });
      await waitFor(() => sockets.length >= 300, "the flood's connections");
      server.off("connection", onConnection);
      const canary = await start(NODE, ["agent.mjs", String(port)], approved);
      const scans = resolver.stats.scans;
      const identified = resolver.stats.identified;
      const lookups = [...sockets.map((s) => socketEnds(s)), socketEnds(canary.socket)].map((e) => {
        assert.ok(e);
        return resolver.lookup(e);
      });
      const answers = await Promise.all(lookups);
      assert.equal(answers.at(-1)?.pid, canary.identity.pid, "the other process is identified among the flood");
      assert.ok(answers.slice(0, -1).every((a) => a?.pid === child.pid));
      const scanned = resolver.stats.scans - scans;
      assert.ok(
        resolver.stats.identified - identified <= 2 * scanned,
        `at most one read per process per scan (${resolver.stats.identified - identified} reads in ${scanned} scans)`,
      );
      for (const s of sockets) s.destroy();
      child.kill("SIGKILL");
    });
  },
);

describe("a terminal session ends when its leader is killed, reaped or not", () => {
  it("a zombie leader (killed, its parent never waits) names no session; the member's re-check sees the change", async () => {
    const dir = await tempDir("piper-zombie-");
    const pidFile = path.join(dir, "pids");
    // sh starts the leader (setsid python, whose child sleeps in its session), then execs a sleep
    // that never waits: the killed leader stays a zombie.
    const script = `import os, subprocess, time
os.setsid()
member = subprocess.Popen(["sleep", "1000"])
open(${JSON.stringify(pidFile)}, "w").write(f"{os.getpid()} {member.pid}")
time.sleep(1000)`;
    const holder = spawn("sh", ["-c", `python3 -c '${script.replaceAll("'", "'\\''")}' & exec sleep 1000`], {
      stdio: "ignore",
    });
    try {
      await waitFor(
        async () => (await fs.readFile(pidFile, "utf8").catch(() => "")).includes(" "),
        "the session's pids",
        15_000,
      );
      const [leaderPid, memberPid] = (await fs.readFile(pidFile, "utf8")).split(" ").map(Number);
      assert.ok(leaderPid !== undefined && memberPid !== undefined);
      const before = await identifyLinuxProcess(memberPid);
      assert.ok(before !== null);
      assert.equal(before.sessionLeader?.pid, leaderPid, "the member's session has its leader");
      assert.notEqual(sessionKey(before), null);
      process.kill(leaderPid, "SIGKILL");
      await waitFor(
        async () => /\) Z /.test(await fs.readFile(`/proc/${leaderPid}/stat`, "utf8").catch(() => "")),
        "the leader to be a zombie",
        15_000,
      );
      const after = await recheckLinuxProcess(before);
      assert.ok(after !== null);
      assert.notEqual(after, before, "the re-check noticed the session's end");
      assert.equal(after.sessionLeader ?? null, null);
      assert.equal(sessionKey(after), null, "no session grant can match it now");
      process.kill(memberPid, "SIGKILL");
    } finally {
      holder.kill("SIGKILL");
    }
  });
});

describe("what a program runs, beyond its executable and script path", () => {
  it("a script changed after its process started is not verifiable; a Python venv is part of the program", async () => {
    const dir = await tempDir("piper-changed-");
    const script = path.join(dir, "agent.mjs");
    await fs.writeFile(script, "setInterval(() => {}, 1000);\n");
    const node = spawn(process.execPath, [script], { stdio: "ignore" });
    const venv = path.join(dir, "venv");
    const made = spawn("/usr/bin/python3", ["-m", "venv", "--without-pip", venv], { stdio: "ignore" });
    const madeExit = once(made, "exit");
    try {
      await waitFor(async () => (await identifyLinuxProcess(node.pid ?? 0)) !== null, "the node program", 15_000);
      const fresh = await identifyLinuxProcess(node.pid ?? 0);
      assert.equal(fresh?.unverifiable ?? null, null, "unchanged: verifiable");
      // The approved text put back (or any change) after the process loaded its own.
      await new Promise((r) => setTimeout(r, 1100));
      await fs.writeFile(script, "setInterval(() => {}, 1000);\n");
      const changed = await identifyLinuxProcess(node.pid ?? 0);
      assert.match(changed?.unverifiable ?? "", /changed after it started/);

      assert.equal((await madeExit)[0], 0, "python3 -m venv");
      const py = path.join(dir, "agent.py");
      await fs.writeFile(py, "import time\ntime.sleep(60)\n");
      const inVenv = spawn(path.join(venv, "bin", "python"), [py], {
        stdio: "ignore",
        env: { ...process.env, PWD: dir },
        cwd: dir,
      });
      const plain = spawn("/usr/bin/python3", [py], { stdio: "ignore", env: { ...process.env, PWD: dir }, cwd: dir });
      try {
        await waitFor(
          async () =>
            (await identifyLinuxProcess(inVenv.pid ?? 0)) !== null &&
            (await identifyLinuxProcess(plain.pid ?? 0)) !== null,
          "both pythons",
          15_000,
        );
        const a = await identifyLinuxProcess(inVenv.pid ?? 0);
        const b = await identifyLinuxProcess(plain.pid ?? 0);
        assert.ok(a !== null && b !== null);
        assert.ok(a.loads?.includes(`venv=${venv}`), JSON.stringify(a.loads));
        assert.notEqual(programKey(a), programKey(b), "the venv's python is another program");
      } finally {
        inVenv.kill();
        plain.kill();
      }
    } finally {
      node.kill();
      made.kill();
    }
  });
});

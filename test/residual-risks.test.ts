// The residual risks `status` reports (src/main/core/runtime/residual-risks.ts), from real files:
// a temporary /proc-like folder for Yama, real files and folders with real owners and modes for the
// install and the unit, a real port held by another server, and a real Link's status.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, describe, it } from "node:test";
import { readLinkEnv } from "../src/main/core/runtime/env.js";
import {
  createResidualRisks,
  machineRisks,
  MACHINE_FACTS_TTL_MS,
  stateRisks,
  writableBy,
  type MachineInputs,
  type Writer,
} from "../src/main/core/runtime/residual-risks.js";
import { startTestLink, tempDir, type TestLink } from "./helpers.js";

const me: Writer = { uid: process.getuid?.() ?? 1000, gids: process.getgroups?.() ?? [] };
/** Someone who neither owns the test's files nor shares a group with them (and is not root). */
const stranger: Writer = { uid: 54_321, gids: [54_321] };
const isRoot = me.uid === 0;

async function procWithScope(scope: string | null): Promise<(relative: string) => string | null> {
  const root = await tempDir("piper-link-proc-");
  if (scope !== null) {
    await fs.mkdir(path.join(root, "sys/kernel/yama"), { recursive: true });
    await fs.writeFile(path.join(root, "sys/kernel/yama/ptrace_scope"), `${scope}\n`);
  }
  return (relative) => {
    try {
      return readFileSync(path.join(root, relative), "utf8");
    } catch {
      return null;
    }
  };
}

function inputs(over: Partial<MachineInputs>): MachineInputs {
  return {
    platform: "linux",
    env: {},
    readProc: () => "1\n",
    installRoot: null,
    unitFile: null,
    writer: stranger,
    ...over,
  };
}

const codes = (risks: Array<{ code: string }>): string[] => risks.map((r) => r.code);

describe("residual risks read from the machine", () => {
  it("X11: DISPLAY without WAYLAND_DISPLAY, or XDG_SESSION_TYPE=x11; not Wayland, not a headless session", () => {
    const table: Array<[NodeJS.ProcessEnv, boolean]> = [
      [{ DISPLAY: ":0" }, true],
      [{ XDG_SESSION_TYPE: "x11" }, true],
      [{ XDG_SESSION_TYPE: "x11", WAYLAND_DISPLAY: "wayland-0", DISPLAY: ":0" }, true],
      [{ DISPLAY: ":0", WAYLAND_DISPLAY: "wayland-0" }, false],
      [{ XDG_SESSION_TYPE: "wayland", DISPLAY: ":0" }, false],
      [{ XDG_SESSION_TYPE: "tty" }, false],
      [{}, false],
    ];
    for (const [env, x11] of table)
      assert.equal(codes(machineRisks(inputs({ env }))).includes("x11_session"), x11, JSON.stringify(env));
    assert.deepEqual(
      machineRisks(inputs({ platform: "darwin", env: { DISPLAY: ":0" } })),
      [],
      "X11 and Yama are Linux's",
    );
    const [risk] = machineRisks(inputs({ env: { DISPLAY: ":0" } }));
    assert.match(risk?.message ?? "", /X11.*Approve.*Wayland/);
  });

  it("Yama: ptrace_scope 0 or absent is a risk; 1, 2 and 3 are not", async () => {
    for (const [scope, risky] of [
      ["0", true],
      [null, true],
      ["1", false],
      ["2", false],
      ["3", false],
    ] as const) {
      const risks = machineRisks(inputs({ readProc: await procWithScope(scope) }));
      assert.equal(codes(risks).includes("ptrace_scope_0"), risky, String(scope));
      if (risky)
        assert.match(
          risks[0]?.message ?? "",
          scope === null ? /no Yama ptrace protection/ : /kernel\.yama\.ptrace_scope is 0.*sysctl/,
        );
    }
  });

  it("who may write a path: owner, group and other bits; a missing path is no risk; root writes anything", async () => {
    const dir = await tempDir("piper-link-risk-");
    const file = path.join(dir, "file");
    await fs.writeFile(file, "x");
    await fs.chmod(file, 0o644);
    assert.equal(writableBy(file, me), true, "the owner with u+w");
    assert.equal(writableBy(file, stranger), false);
    await fs.chmod(file, 0o444);
    // Root writes anything, so as root the file is given to the stranger to test an owner without u+w.
    if (isRoot) await fs.chown(file, stranger.uid, stranger.uid);
    assert.equal(writableBy(file, isRoot ? stranger : me), false, "the owner without u+w");
    if (isRoot) await fs.chown(file, 0, 0);
    await fs.chmod(file, 0o646);
    assert.equal(writableBy(file, stranger), true, "o+w");
    const st = await fs.stat(file);
    await fs.chmod(file, 0o464);
    assert.equal(writableBy(file, { uid: 54_321, gids: [st.gid] }), true, "g+w and a shared group");
    assert.equal(writableBy(path.join(dir, "missing"), stranger), false);
    assert.equal(writableBy(file, { uid: 0, gids: [] }), true);
    assert.equal(writableBy("/", stranger), false);
  });

  it("the install (a folder, or an archive in a folder) and the unit file, when the user may write them", async () => {
    const root = await tempDir("piper-link-install-");
    await fs.chmod(root, 0o755);
    const unit = path.join(root, "piper-link.service");
    await fs.writeFile(unit, "[Unit]\n");
    await fs.chmod(unit, 0o644);
    const asar = path.join(root, "app.asar");
    await fs.writeFile(asar, "");
    await fs.chmod(asar, 0o644);

    const owner = machineRisks(inputs({ installRoot: root, unitFile: unit, writer: me }));
    assert.deepEqual(
      codes(owner).filter((c) => c !== "ptrace_scope_0"),
      ["install_writable", "unit_writable"],
    );
    assert.match(
      owner.find((r) => r.code === "install_writable")?.message ?? "",
      new RegExp(`\\(${root}\\) can be changed by your user account.*owned by root`),
    );
    assert.match(
      owner.find((r) => r.code === "unit_writable")?.message ?? "",
      new RegExp(`sudo chown root:root ${unit} && sudo chmod 644 ${unit}`),
    );
    assert.deepEqual(
      machineRisks(inputs({ installRoot: root, unitFile: unit, writer: stranger })),
      [],
      "nothing the stranger may write",
    );
    assert.deepEqual(
      machineRisks(inputs({ unitFile: path.join(root, "none.service"), writer: me })),
      [],
      "no unit file, no risk",
    );

    // An archive: read-only itself, but replaceable through its folder.
    await fs.chmod(asar, 0o444);
    await fs.chmod(root, 0o757);
    assert.deepEqual(codes(machineRisks(inputs({ installRoot: asar, writer: stranger }))), ["install_writable"]);
    await fs.chmod(root, 0o755);
    assert.deepEqual(machineRisks(inputs({ installRoot: asar, writer: stranger })), []);
  });
});

describe("residual risks from the Link's state", () => {
  it("port taken, unattended unlock, not dumpable: each a sentence that says what to do", () => {
    assert.deepEqual(
      stateRisks({ preferredPort: 31477, port: 31477, fallback: false, unattended: false, dumpableFailure: null }),
      [],
    );
    const risks = stateRisks({
      preferredPort: 31477,
      port: 40001,
      fallback: true,
      unattended: true,
      dumpableFailure: "prctl(PR_SET_DUMPABLE, 0) failed (errno 22)",
    });
    assert.deepEqual(codes(risks), ["port_taken", "unattended_unlock", "not_dumpable_failed"]);
    assert.match(
      risks[0]?.message ?? "",
      /Another program holds port 31477, so Piper Link listens on 40001\..*ss -ltnp 'sport = :31477'/,
    );
    assert.match(risks[1]?.message ?? "", /PIPER_LINK_PASSPHRASE_FILE.*Approvals still need/);
    assert.match(risks[2]?.message ?? "", /\(prctl\(PR_SET_DUMPABLE, 0\) failed \(errno 22\)\).*piper-link lock/);
  });

  it("machine facts are read once per TTL, the state on every call", async () => {
    const config = await tempDir("piper-link-config-");
    let t = 1_000_000;
    const risks = createResidualRisks({
      profile: "default",
      env: readLinkEnv({ XDG_CONFIG_HOME: config }, "linux"),
      installRoot: null,
      now: () => t,
      machine: { readProc: () => "1\n", writer: me },
    });
    const state = { preferredPort: 31477, port: 31477, fallback: false, unattended: false, dumpableFailure: null };
    assert.deepEqual(risks.current(state), []);
    // The unit file appears; the cached facts do not see it until the TTL has passed.
    const unit = path.join(config, "systemd", "user", "piper-link.service");
    await fs.mkdir(path.dirname(unit), { recursive: true });
    await fs.writeFile(unit, "[Unit]\n");
    t += MACHINE_FACTS_TTL_MS - 1;
    assert.deepEqual(
      codes(risks.current({ ...state, unattended: true })),
      ["unattended_unlock"],
      "the state is read on every call",
    );
    t += 1;
    assert.deepEqual(codes(risks.current(state)), ["unit_writable"]);
    assert.match(risks.current(state)[0]?.message ?? "", new RegExp(unit));
  });
});

describe("a real Link's status lists its risks", () => {
  const links: TestLink[] = [];
  const servers: net.Server[] = [];
  after(async () => {
    for (const l of links) await l.stop();
    for (const s of servers) s.close();
  });

  it("another server on the preferred port, a writable install and a failed hardening", async () => {
    const squatter = net.createServer();
    servers.push(squatter);
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    const address = squatter.address();
    assert.ok(address !== null && typeof address === "object");
    const installRoot = await tempDir("piper-link-install-");
    const t = await startTestLink({
      port: address.port,
      pyperPort: 0,
      installRoot,
      hardening: { dumpableFailure: "test: prctl refused" },
    });
    links.push(t);
    const status = t.link.status();
    assert.equal(status.portFallback, true);
    const found = codes(status.risks);
    for (const code of ["port_taken", "not_dumpable_failed"])
      assert.ok(found.includes(code), `${code} in ${JSON.stringify(found)}`);
    // The test's own files are its user's: writable, whoever runs the tests.
    assert.ok(found.includes("install_writable"), JSON.stringify(found));
    assert.match(
      status.risks.find((r) => r.code === "port_taken")?.message ?? "",
      new RegExp(`holds port ${address.port}, so Piper Link listens on ${status.port}\\.`),
    );
  });

  it("a Link without those has none of them (and none of the state's)", async () => {
    const t = await startTestLink({ installRoot: null });
    links.push(t);
    const found = codes(t.link.status().risks);
    for (const code of ["port_taken", "not_dumpable_failed", "install_writable", "unattended_unlock"])
      assert.equal(found.includes(code), false, code);
  });
});

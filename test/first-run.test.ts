// First run on a bare server (issue 15 items 1-2): no session bus, so no OS keychain; the Link is
// started from a clean HOME with the encrypted-file keychain, the passphrase from the environment,
// and a secret reaches an agent. Real processes: the compiled CLI, the embedded authority, SQLite.
// Also the file keychain itself (real files, real scrypt at lowered cost) and `npm start`'s offer.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { HttpErrorBodySchema, LinkError } from "../src/shared/errors.js";
import { createFileKeychainStore, FILE_KEYCHAIN_NAME } from "../src/main/core/runtime/file-keychain.js";
import { readLinkEnv } from "../src/main/core/runtime/env.js";
import { keychainOffer, passphraseSource } from "../src/main/core/runtime/keychain-choice.js";
import { BIN, cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { connectAgent, pendingRequestId, tempDir } from "./helpers.js";
import { z } from "zod";

after(stopAll);

const VALUE = "sk-first-run-0123456789-unique";

/** A clean HOME with no session bus at all: the environment a bare server over SSH gives. */
async function bareServerEnv(): Promise<CliEnv> {
  const e = await newEnv();
  delete e.env["DBUS_SESSION_BUS_ADDRESS"];
  delete e.env["DISPLAY"];
  delete e.env["WAYLAND_DISPLAY"];
  // newEnv's passphrase file (PIPER_LINK_PASSPHRASE_FILE) unlocks the vault and opens the keychain file: one passphrase.
  return e;
}

describe("first run on a bare server (no session bus)", () => {
  it("starts with --keychain file, signs in, stores a secret, and an agent gets it; the choice is remembered; nothing in plaintext", async () => {
    const e = await bareServerEnv();
    // Without a choice the OS keychain is used, and there is none: it says so, never falls back silently.
    const refused = cli(e, ["start", "--port", "0", "--json"]);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.equal(
      HttpErrorBodySchema.parse(JSON.parse(refused.stdout.trim().split("\n").pop() ?? "{}")).error,
      "keychain_unavailable",
    );

    const status = cliJson(e, ["start", "--port", "0", "--keychain", "file"], LinkStatusSchema);
    assert.equal(status.keychain.backend, "file");
    assert.equal(status.keychain.ok, true);
    assert.equal(status.authority?.mode, "embedded");
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    assert.equal(cli(e, ["secrets", "set", "OPENAI_API_KEY"], `${VALUE}\n`).code, 0);
    const human = cli(e, ["status"]);
    assert.match(human.stdout, /keychain: {2}encrypted file \(passphrase\)/);

    const agent = await connectAgent(status.url);
    assert.equal((await agent.hello(1, "agent_first_run")).type, "welcome");
    agent.send({ type: "resolve", id: 2, variable: "OPENAI_API_KEY", reason: "first run" });
    const first = await agent.next((m) => "id" in m && m.id === 2, 15_000);
    assert.equal(first.type, "pending");
    const [req] = cliJson(e, ["requests"], z.array(RequestViewSchema));
    assert.equal(req?.id, pendingRequestId(first));
    cliJson(e, ["approve", req.id, "--once"], GrantViewSchema);
    const secret = await agent.next((m) => "id" in m && m.id === 2 && m.type !== "pending", 15_000);
    assert.equal(secret.type, "secret");
    assert.equal(secret.value, VALUE);
    agent.close();

    // The keychain file: private, and neither the items' names nor the data key readable in it.
    const file = path.join(e.paths.dataDir, FILE_KEYCHAIN_NAME);
    const stat = await fs.stat(file);
    assert.equal(stat.mode & 0o777, 0o600);
    const text = await fs.readFile(file, "utf8");
    assert.doesNotMatch(text, /authority-data-key|instance-id|refresh-token/);

    // Remembered: a later start without --keychain uses the file again.
    assert.equal(cli(e, ["stop"]).code, 0);
    const again = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    assert.equal(again.keychain.backend, "file");
    assert.equal(again.state, "ready");
    assert.equal(cli(e, ["stop"]).code, 0);
    // (A start writes the embedded authority's settings again: compare against the file as it is now.)
    const before = await fs.readFile(file, "utf8");

    // A wrong passphrase: the daemon's own keychain_locked, with advice, and nothing overwritten.
    const wrong = path.join(e.home, "wrong-passphrase");
    await fs.writeFile(wrong, "wrong\n", { mode: 0o600 });
    e.env["PIPER_LINK_PASSPHRASE_FILE"] = wrong;
    const locked = cli(e, ["start", "--port", "0", "--json"]);
    assert.notEqual(locked.code, 0);
    const body = HttpErrorBodySchema.parse(JSON.parse(locked.stdout.trim().split("\n").pop() ?? "{}"));
    assert.equal(body.error, "keychain_locked");
    assert.match(body.message, /PIPER_LINK_PASSPHRASE_FILE/);
    assert.equal(await fs.readFile(file, "utf8"), before);
  });
});

describe("the encrypted-file keychain", () => {
  const kdf = { N: 2 ** 14, r: 8, p: 1 };
  const open = (dataDir: string, passphrase: string) =>
    createFileKeychainStore({
      dataDir,
      service: "piper-link.test",
      passphrase: () => Promise.resolve(passphrase),
      kdf,
    });

  it("round-trips items, reports absence as null, and refuses a wrong passphrase or a changed file as keychain_locked", async () => {
    const dir = await tempDir("piper-file-keychain-");
    const k = open(dir, "pass-1");
    assert.equal(k.backend, "file");
    assert.equal(await k.get("instance-id"), null);
    await k.set("instance-id", "inst_abc");
    await k.set("refresh-token", "rt_1");
    assert.equal(await open(dir, "pass-1").get("instance-id"), "inst_abc");
    assert.equal(await k.delete("refresh-token"), true);
    assert.equal(await k.delete("refresh-token"), false);
    assert.equal(await k.get("refresh-token"), null);

    await assert.rejects(
      open(dir, "pass-2").get("instance-id"),
      (err: unknown) => err instanceof LinkError && err.code === "keychain_locked",
    );
    // A lowered KDF cost in the header is authenticated: it fails like a wrong passphrase.
    const file = path.join(dir, FILE_KEYCHAIN_NAME);
    const original = await fs.readFile(file, "utf8");
    await fs.writeFile(file, original.replace('"r":8', '"r":4'));
    await assert.rejects(
      open(dir, "pass-1").get("instance-id"),
      (err: unknown) => err instanceof LinkError && err.code === "keychain_locked",
    );
  });

  it("takes the passphrase from a file only (never a variable holding it), else refuses without a terminal", async () => {
    const dir = await tempDir("piper-passphrase-");
    const credential = path.join(dir, "passphrase");
    await fs.writeFile(credential, "from-file\n");
    // A variable that carries the passphrase itself is not read: every process of the user can read the environment.
    await assert.rejects(
      passphraseSource(readLinkEnv({ PIPER_LINK_KEYCHAIN_PASSPHRASE: "from-env" }).passphraseFile, false)(),
      (err: unknown) => err instanceof LinkError && err.code === "keychain_locked",
    );
    assert.equal(
      await passphraseSource(readLinkEnv({ PIPER_LINK_PASSPHRASE_FILE: credential }).passphraseFile, false)(),
      "from-file",
    );
    assert.equal(
      await passphraseSource(readLinkEnv({ PIPER_LINK_KEYCHAIN_PASSPHRASE_FILE: credential }).passphraseFile, false)(),
      "from-file",
    );
    await assert.rejects(
      passphraseSource(readLinkEnv({}).passphraseFile, false)(),
      (err: unknown) => err instanceof LinkError && err.code === "keychain_locked",
    );
  });
});

describe("`npm start`'s offer of the file keychain", () => {
  it("on a terminal, a new keychain file's passphrase is asked twice, again after a mismatch, and the CLI starts with the confirmed one", async () => {
    const e = await bareServerEnv();
    delete e.env["PIPER_LINK_PASSPHRASE_FILE"];
    // A real terminal (python3's pty): answers are typed only once each question is on the screen.
    const driver = `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
seen = b""
transcript = b""
def wait_for(text):
    global seen, transcript
    end = time.time() + 30
    while text.encode() not in seen:
        if time.time() > end: raise SystemExit("timed out waiting for " + text + ": " + seen.decode(errors="replace"))
        try:
            chunk = os.read(fd, 1024)
            seen += chunk
            transcript += chunk
        except OSError: raise SystemExit("ended before " + text + ": " + seen.decode(errors="replace"))
    seen = seen[seen.index(text.encode()) + len(text):]
for question, answer in [("work well): ", "first try words"), ("Repeat it: ", "frist try words"), ("work well): ", "second try words"), ("Repeat it: ", "second try words"), ("with the passphrase): ", "")]:
    wait_for(question)
    os.write(fd, (answer + "\\r").encode())
rest = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk: break
    rest += chunk
sys.stdout.write((transcript + rest).decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`;
    const r = spawnSync(
      "python3",
      [
        "-c",
        driver,
        process.execPath,
        BIN,
        "--profile",
        e.profile,
        "start",
        "--port",
        "0",
        "--keychain",
        "file",
        "--json",
      ],
      { env: e.env, encoding: "utf8", timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /The two passphrases differ\. Try again\./);
    assert.doesNotMatch(r.stdout, /first try|second try|frist/, "nothing typed is echoed");
    // The file was created with the confirmed passphrase: it opens with it, and not with the mismatch.
    const confirmed = path.join(e.home, "confirmed-passphrase");
    await fs.writeFile(confirmed, "second try words\n", { mode: 0o600 });
    e.env["PIPER_LINK_PASSPHRASE_FILE"] = confirmed;
    assert.equal(cli(e, ["stop"]).code, 0);
    const again = cli(e, ["start", "--port", "0", "--json"]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("asks only on a terminal, only when no Secret Service answers and nothing was chosen", () => {
    const base = {
      platform: "linux" as const,
      interactive: true,
      secretServiceAnswers: false,
      remembered: null,
      argv: [] as string[],
    };
    assert.equal(keychainOffer(base), "ask");
    assert.equal(keychainOffer({ ...base, interactive: false }), "none");
    assert.equal(keychainOffer({ ...base, secretServiceAnswers: true }), "none");
    assert.equal(keychainOffer({ ...base, remembered: "file" as const }), "none");
    assert.equal(keychainOffer({ ...base, argv: ["--keychain", "os"] }), "none");
    assert.equal(keychainOffer({ ...base, platform: "darwin" as const }), "none");
  });
});

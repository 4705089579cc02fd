// A Link configured with a remote authority (a standalone `piper-link authority serve` on HTTPS with
// its own CA file): when the authority goes down agents get `authority_unavailable` (retryable) and
// `status` says so; when it comes back the Link reconnects by itself and grants work again.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { newDataKey } from "../src/server/crypto.js";
import { BIN, cli, cliJson, newEnv, stopAll } from "./cli-helpers.js";
import { ENGINES } from "./db-helpers.js";
import { connectAgent, pendingRequestId, tempDir, TEST_ACCOUNT_PASSWORD, waitFor } from "./helpers.js";

const running: ChildProcess[] = [];
after(() => {
  stopAll();
  for (const c of running) c.kill("SIGKILL");
});

function serve(
  db: string,
  listen: string,
  tlsDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [BIN, "authority", "serve", "--db", db, "--listen", listen, "--tls-dir", tlsDir],
    { env, stdio: ["ignore", "pipe", "inherit"] },
  );
  running.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve({ child, url: (JSON.parse(out.split("\n")[0] ?? "{}") as { url: string }).url });
    });
    child.once("exit", (code) => reject(new Error(`authority exited ${code}`)));
  });
}

for (const engine of ENGINES)
  describe(`Link with a remote authority on ${engine.name}`, { skip: engine.skip }, () => {
    it("approves, then gives retryable authority_unavailable while the authority is down and recovers without restarting the Link", async () => {
      const dir = await tempDir("piper-remote-");
      const database = await engine.make();
      after(() => void database.drop());
      const db = database.location;
      const tlsDir = path.join(dir, "tls");
      const authorityEnv = { ...process.env, PIPER_AUTHORITY_DATA_KEYS: `k1:${newDataKey()}` };
      // A team authority checks approvals itself, with the account's password: the person has one.
      const passwordFile = path.join(dir, "password");
      await writeFile(passwordFile, `${TEST_ACCOUNT_PASSWORD}\n`, { mode: 0o600 });
      const user = spawnSync(
        process.execPath,
        [BIN, "authority", "create-user", "--db", db, "--email", "person@example.com", "--password-file", passwordFile],
        { env: authorityEnv, encoding: "utf8" },
      );
      const { linkToken } = JSON.parse(user.stdout) as { linkToken: string };
      let authority = await serve(db, "127.0.0.1:0", tlsDir, authorityEnv);
      const port = new URL(authority.url).port;

      const e = await newEnv();
      e.env["PIPER_LINK_AUTHORITY_TOKEN"] = linkToken;
      e.env["PIPER_LINK_AUTHORITY_CA"] = path.join(tlsDir, "tls.crt");
      const started = cliJson(e, ["start", "--port", "0", "--authority", authority.url], LinkStatusSchema);
      assert.equal(started.authority?.mode, "remote");
      cliJson(e, ["dev", "sign-in", "--name", "remote test"], LinkStatusSchema);
      assert.equal(cli(e, ["secrets", "set", "REMOTE_KEY"], "remote-value").code, 0);

      const agent = await connectAgent(started.url);
      await agent.hello(1, "agent_remote");
      agent.send({ type: "resolve", id: 2, variable: "REMOTE_KEY" });
      const requestId = pendingRequestId(await agent.next((m) => "id" in m && m.id === 2, 10_000));
      assert.deepEqual(
        cliJson(e, ["requests"], z.array(RequestViewSchema)).map((r) => r.id),
        [requestId],
      );
      cliJson(e, ["approve", requestId, "--until-revoked"], GrantViewSchema);
      assert.equal((await agent.next((m) => "id" in m && m.id === 2 && m.type !== "pending", 10_000)).type, "secret");

      // Down.
      authority.child.kill("SIGKILL");
      await new Promise((r) => authority.child.once("exit", r));
      await waitFor(
        () => cliJson(e, ["status"], LinkStatusSchema).authority?.connected === false,
        "status to report the authority unreachable",
      );
      assert.match(cli(e, ["status"]).stdout, /unreachable: .*retrying/);
      // The grant is live, but while the Link cannot hear revocations it does not answer from memory.
      agent.send({ type: "resolve", id: 3, variable: "REMOTE_KEY" });
      const down = await agent.next((m) => "id" in m && m.id === 3, 20_000);
      assert.deepEqual(down.type === "error" && [down.code, down.retryable], ["authority_unavailable", true]);

      // Back on the same address: the Link reconnects on its own.
      authority = await serve(db, `127.0.0.1:${port}`, tlsDir, authorityEnv);
      await waitFor(
        () => cliJson(e, ["status"], LinkStatusSchema).authority?.connected === true,
        "the Link to reconnect",
        20_000,
      );
      agent.send({ type: "resolve", id: 4, variable: "REMOTE_KEY" });
      const back = await agent.next((m) => "id" in m && m.id === 4, 10_000);
      assert.equal(back.type === "secret" && back.value, "remote-value");

      // A revocation made at the authority directly (another device, another authority process)
      // reaches this Link as an event and empties its cache: the agent is pending again.
      const grant = cliJson(e, ["grants"], z.array(GrantViewSchema))[0];
      assert.ok(grant);
      const revoked = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          new URL(`/v1/grants/${grant.id}/revoke`, authority.url),
          {
            method: "POST",
            ca: readFileSync(path.join(tlsDir, "tls.crt")),
            headers: { Authorization: `Bearer ${linkToken}`, "Content-Type": "application/json" },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end("{}");
      });
      assert.equal(revoked, 200);
      let next = 5;
      await waitFor(
        async () => {
          const id = next++;
          agent.send({ type: "resolve", id, variable: "REMOTE_KEY", wait: false });
          return (await agent.next((m) => "id" in m && m.id === id, 10_000)).type === "pending";
        },
        "the revocation to reach the Link",
        2000,
      );
      agent.close();
      assert.equal(cli(e, ["stop"]).code, 0);
    });
  });

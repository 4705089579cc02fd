// The TypeScript SDK against a real Link + embedded authority started per test (compiled CLI, real
// keyring); approvals through the CLI, as a person would give them.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs/promises";
import net from "node:net";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import {
  createPiperClient,
  discoverLinkUrl,
  envNameFor,
  PiperError,
  PiperForbiddenError,
  PiperGrantNeededError,
  PiperLinkNeededError,
  PiperSecretAcquisitionError,
} from "@piper-link/sdk";
import { BIN, cli, cliJson, cliJsonAsync, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { waitFor } from "./helpers.js";

after(stopAll);

const execFileAsync = promisify(execFile);

const VALUE = "sk-sdk-test-value-42";

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function signedInLink(port = 0): Promise<{ e: CliEnv; url: string }> {
  const e = await newEnv();
  const status = cliJson(e, ["start", "--port", String(port)], LinkStatusSchema);
  cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
  assert.equal(cli(e, ["secrets", "set", "OPENAI_API_KEY"], VALUE).code, 0);
  return { e, url: status.url };
}

/** The first pending request's ID, waiting for it to appear (without blocking the event loop). */
async function nextRequestId(e: CliEnv): Promise<string> {
  let id: string | undefined;
  await waitFor(async () => {
    id = (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema)))[0]?.id;
    return id !== undefined;
  }, "a pending request");
  return id ?? "";
}

async function approveNext(e: CliEnv, scope = "--once"): Promise<void> {
  await cliJsonAsync(e, ["approve", await nextRequestId(e), scope], GrantViewSchema);
}

describe("TypeScript SDK", () => {
  it("first call is pending (onPending fires) and returns the value after a CLI approval; the next call is immediate", async () => {
    const { e, url } = await signedInLink();
    const client = createPiperClient({ clientId: "sdk_agent", name: "SDK Agent", linkUrl: url, fallbackToEnv: false });
    try {
      const pending: string[] = [];
      const result = client.getSecret("OPENAI_API_KEY", {
        reason: "testing the SDK",
        onPending: ({ requestId }) => pending.push(requestId),
      });
      await approveNext(e, "--until-revoked");
      const r = await result;
      assert.equal(r.value, VALUE);
      assert.equal(r.source, "piper");
      assert.equal(r.variable, "OPENAI_API_KEY");
      assert.match(r.grantId ?? "", /^gr_/);
      assert.equal(pending.length, 1);
      const again = await client.getSecret("OPENAI_API_KEY", { wait: false });
      assert.equal(again.value, VALUE);
      assert.match(await client.getInstanceId(), /^inst_/);
    } finally {
      client.close();
    }
  });

  it("a profile whose Link is not running is not the default profile's Link on the default port", async () => {
    const home = await fs.mkdtemp("/tmp/piper-sdk-profile-");
    const env = { HOME: home, XDG_RUNTIME_DIR: home, PIPER_LINK_PROFILE: "other" };
    assert.deepEqual(discoverLinkUrl(undefined, env), { url: null, source: "none", profile: "other" });
    assert.equal(discoverLinkUrl(undefined, { HOME: home, XDG_RUNTIME_DIR: home }).source, "default");
    const client = createPiperClient({ clientId: "sdk_agent", env, fallbackToEnv: false });
    await assert.rejects(client.getSecret("OPENAI_API_KEY"), (err: unknown) => {
      assert.ok(err instanceof PiperLinkNeededError);
      assert.equal(err.code, "link_not_running");
      assert.match(err.message, /no Link of profile other is running/);
      return true;
    });
    client.close();
  });

  it("throws PiperLinkNeededError within 1 s when the Link is not running", async () => {
    const port = await freePort();
    const client = createPiperClient({
      clientId: "sdk_agent",
      linkUrl: `ws://127.0.0.1:${port}/v1/link`,
      fallbackToEnv: false,
    });
    const started = Date.now();
    await assert.rejects(client.getSecret("OPENAI_API_KEY"), (err: unknown) => {
      assert.ok(err instanceof PiperLinkNeededError);
      assert.equal(err.code, "link_not_running");
      assert.match(err.message, /Piper Link is not running\. Start it with `npm start`/);
      return true;
    });
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    await assert.rejects(client.getInstanceId(), PiperLinkNeededError);
    client.close();
  });

  it("with env fallback: falls back to the environment, or reports every source in PiperSecretAcquisitionError", async () => {
    const port = await freePort();
    const linkUrl = `ws://127.0.0.1:${port}/v1/link`;
    const withEnv = createPiperClient({ clientId: "a", linkUrl, env: { OPENAI_API_KEY: "from-env" } });
    assert.deepEqual(await withEnv.getSecret("OPENAI_API_KEY"), {
      value: "from-env",
      source: "environment_variable",
      variable: "OPENAI_API_KEY",
    });
    withEnv.close();
    const without = createPiperClient({ clientId: "a", linkUrl, env: {} });
    await assert.rejects(without.getSecret("openai api key"), (err: unknown) => {
      assert.ok(err instanceof PiperSecretAcquisitionError);
      assert.ok(err.cause instanceof PiperLinkNeededError);
      assert.deepEqual(Object.keys(err.attempts), ["piper", "environment_variable"]);
      assert.equal(err.attempts["environment_variable"], "OPENAI_API_KEY is not set");
      return true;
    });
    without.close();
  });

  it("uses the environment only, with pyper-sdk's naming rules and precedence", async () => {
    const env = { MY_OPENAI_API_KEY: "prefixed", CUSTOM: "mapped", OPENAI_API_KEY: "plain" };
    const c = createPiperClient({
      clientId: "a",
      useLink: false,
      env,
      envPrefix: "MY_",
      envMap: { special: "CUSTOM" },
    });
    assert.equal((await c.getSecret("openai-api.key")).value, "prefixed");
    assert.equal((await c.getSecret("special")).value, "mapped");
    assert.equal(envNameFor("a--b  c"), "A_B_C");
    assert.equal(envNameFor("x", "P_", { x: "EXPLICIT" }), "EXPLICIT");
    const none = createPiperClient({ clientId: "a", useLink: false, fallbackToEnv: false });
    await assert.rejects(none.getSecret("X"), (err: unknown) => err instanceof PiperError && err.code === "no_sources");
    assert.throws(
      () => createPiperClient({ clientId: "" }),
      (err: unknown) => err instanceof PiperError && err.code === "invalid_client_id",
    );
  });

  it("reports not_logged_in when nobody is signed in", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const client = createPiperClient({ clientId: "a", linkUrl: status.url, fallbackToEnv: false });
    await assert.rejects(
      client.getSecret("OPENAI_API_KEY"),
      (err: unknown) => err instanceof PiperLinkNeededError && err.code === "not_logged_in",
    );
    client.close();
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("throws PiperForbiddenError on deny and PiperGrantNeededError for wait:false and on timeout; abort cancels a wait", async () => {
    const { e, url } = await signedInLink();
    const client = createPiperClient({ clientId: "sdk_deny", linkUrl: url, fallbackToEnv: false });
    try {
      await assert.rejects(
        client.getSecret("OPENAI_API_KEY", { wait: false }),
        (err: unknown) => err instanceof PiperGrantNeededError && err.code === "grant_needed" && err.requestId !== null,
      );
      const denied = assert.rejects(client.getSecret("OPENAI_API_KEY"), PiperForbiddenError);
      await cliJsonAsync(e, ["deny", await nextRequestId(e)], RequestViewSchema);
      await denied;
      await assert.rejects(
        client.getSecret("OPENAI_API_KEY", { timeoutMs: 300 }),
        (err: unknown) => err instanceof PiperGrantNeededError && err.code === "timeout",
      );
      const controller = new AbortController();
      const waiting = client.getSecret("OPENAI_API_KEY", { signal: controller.signal });
      setTimeout(() => controller.abort(), 200);
      const started = Date.now();
      await assert.rejects(waiting, (err: unknown) => err instanceof PiperError && err.code === "aborted");
      assert.ok(Date.now() - started < 2000);
    } finally {
      client.close();
    }
  });

  it("reconnects after the Link restarts mid-session; the next call works", async () => {
    const port = await freePort();
    const { e, url } = await signedInLink(port);
    const client = createPiperClient({ clientId: "sdk_restart", linkUrl: url, fallbackToEnv: false });
    try {
      const first = client.getSecret("OPENAI_API_KEY");
      await approveNext(e, "--until-revoked");
      assert.equal((await first).value, VALUE);
      await cliJsonAsync(e, ["stop"], z.looseObject({ stopped: z.literal(true) }));
      assert.equal((await cliJsonAsync(e, ["start", "--port", String(port)], LinkStatusSchema)).port, port);
      assert.equal((await client.getSecret("OPENAI_API_KEY")).value, VALUE);
    } finally {
      client.close();
    }
  });

  it("finds the Link with no configuration through the discovery file, as an installed package (@piper-link/sdk)", async () => {
    const { e } = await signedInLink();
    const script = `
      import { createPiperClient } from "@piper-link/sdk";
      const piper = createPiperClient({ clientId: "zero_config", fallbackToEnv: false });
      const r = await piper.getSecret("OPENAI_API_KEY", { onPending: () => console.log("PENDING") });
      console.log("VALUE=" + r.value);
      piper.close();`;
    const env: NodeJS.ProcessEnv = { ...e.env };
    delete env["PIPER_LINK_URL"];
    const child = execFileAsync(process.execPath, ["--input-type=module", "-e", script], {
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    await approveNext(e);
    const { stdout } = await child;
    assert.equal(stdout, `PENDING\nVALUE=${VALUE}\n`);
  });

  it("`piper-link run` passes the secret to the child's environment only", async () => {
    const { e } = await signedInLink();
    const printer = `process.stdout.write(JSON.stringify({ env: process.env.OPENAI_API_KEY, renamed: process.env.OPENAI, argv: process.argv }))`;
    const run = execFileAsync(
      process.execPath,
      [
        BIN,
        "run",
        "--secret",
        "OPENAI_API_KEY",
        "--secret",
        "OPENAI_API_KEY=OPENAI",
        "--",
        process.execPath,
        "-e",
        printer,
      ],
      { env: e.env, encoding: "utf8", timeout: 60_000 },
    );
    await approveNext(e, "--until-revoked");
    const r = await run;
    const out = JSON.parse(r.stdout) as { env: string; renamed: string; argv: string[] };
    assert.equal(out.env, VALUE);
    assert.equal(out.renamed, VALUE);
    assert.ok(!out.argv.join(" ").includes(VALUE));
    assert.match(r.stderr, /Waiting for you to approve OPENAI_API_KEY in Piper Link/);
    assert.equal(cli(e, ["stop"]).code, 0);
    const log = await fs.readFile(e.paths.logFile, "utf8");
    assert.ok(!log.includes(VALUE), "the Link's log must not contain the value");
    const notRunning = spawnSync(process.execPath, [BIN, "run", "--secret", "X", "--", "true"], {
      env: e.env,
      encoding: "utf8",
    });
    assert.equal(notRunning.status, 3);
    assert.match(notRunning.stderr, /Piper Link is not running/);
  });
});

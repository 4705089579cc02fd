import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { redactInstanceId } from "../src/shared/control.js";
import { discoveryFilePath } from "../src/shared/discovery.js";
import { AgentMessageSchema, LinkMessageSchema, normalizeVariable } from "../src/shared/protocol.js";
import { LINK_VERSION } from "../src/shared/version.js";

describe("shared", () => {
  it("normalizes variable names like pyper-sdk", () => {
    assert.equal(normalizeVariable("OPENAI_API_KEY"), "openai_api_key");
    assert.equal(normalizeVariable("openai-api  key"), "openai_api_key");
    assert.equal(normalizeVariable("  My.Secret!!--Name "), "mysecret_name");
    assert.equal(normalizeVariable("a__b___c"), "a_b_c");
  });

  it("redacts instance IDs, keeping the prefix and the last four characters", () => {
    assert.equal(redactInstanceId("inst_abcdef123456789"), "inst_••••••6789");
    assert.equal(redactInstanceId("short"), "••••••");
    assert.ok(!redactInstanceId("inst_abcdef123456789").includes("abcdef"));
  });

  it("puts the discovery file in XDG_RUNTIME_DIR on Linux and in app data elsewhere", () => {
    assert.equal(
      discoveryFilePath({ platform: "linux", env: { XDG_RUNTIME_DIR: "/run/user/1000" }, homedir: "/home/p" }),
      "/run/user/1000/piper-link/link.json",
    );
    assert.equal(
      discoveryFilePath({ platform: "linux", env: {}, homedir: "/home/p" }),
      "/home/p/.local/share/piper-link/link.json",
    );
    assert.equal(
      discoveryFilePath({ platform: "darwin", env: {}, homedir: "/Users/p" }),
      "/Users/p/Library/Application Support/piper-link/link.json",
    );
    assert.equal(
      discoveryFilePath({
        platform: "win32",
        env: { APPDATA: "C:\\Users\\p\\AppData\\Roaming" },
        homedir: "C:\\Users\\p",
      }),
      "C:\\Users\\p\\AppData\\Roaming\\piper-link\\link.json",
    );
  });

  it("keeps LINK_VERSION equal to package.json's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    assert.equal(LINK_VERSION, pkg.version);
  });

  it("accepts the reference frames of DESIGN.md section 4 and refuses bad ones", () => {
    assert.ok(
      AgentMessageSchema.safeParse({
        type: "hello",
        id: 1,
        protocol: 1,
        agent: { clientId: "agent_x", name: "My Agent" },
        sdk: { name: "x", version: "1" },
      }).success,
    );
    assert.ok(
      AgentMessageSchema.safeParse({
        type: "resolve",
        id: 2,
        variable: "OPENAI_API_KEY",
        reason: "r",
        wait: true,
        timeoutMs: 120000,
      }).success,
    );
    assert.ok(
      !AgentMessageSchema.safeParse({ type: "hello", id: 1, protocol: 1, agent: { clientId: "has space" } }).success,
    );
    assert.ok(!AgentMessageSchema.safeParse({ type: "resolve", id: 2, variable: "" }).success);
    assert.ok(LinkMessageSchema.safeParse({ type: "context", instanceId: null, state: "logged_out" }).success);
    assert.ok(
      LinkMessageSchema.safeParse({ type: "error", id: 2, code: "denied", message: "no", retryable: false }).success,
    );
    assert.ok(
      !LinkMessageSchema.safeParse({ type: "error", id: 2, code: "made_up", message: "no", retryable: false }).success,
    );
  });
});

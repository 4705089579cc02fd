// The one control dispatch (issue 12 item 4) against a real Link's API, the typed LinkApi proxy, and
// the Electron shell's pure policies (openExternal allowlist, sender frames). The shell's Electron
// wiring itself is not run here: the Electron binary cannot be downloaded on these machines.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CONTROL_METHOD_NAMES,
  createLinkApi,
  dispatchControl,
  unwrapControlOutcome,
  type ControlOutcome,
} from "../src/shared/control.js";
import { LinkError } from "../src/shared/errors.js";
import { isAuthoritySignInUrl, isOwnPageUrl, signInPagesOrigin } from "../src/main/app/shell-policy.js";
import { startTestLink } from "./helpers.js";

describe("control dispatch", () => {
  it("validates method and params, runs the real API, and keeps a thrown LinkError's code across a value boundary", async () => {
    const t = await startTestLink();
    try {
      const unknown = await dispatchControl(t.link.api, "dropTables", {});
      assert.equal(unknown.ok ? "ok" : unknown.error.code, "bad_request");
      const invalid = await dispatchControl(t.link.api, "setInstanceId", { instanceId: 42 });
      assert.equal(invalid.ok ? "ok" : invalid.error.code, "bad_request");
      assert.match(
        invalid.ok ? "" : invalid.error.message,
        /^Piper Link could not set instance id: the instance ID must be a string\.$/,
      );

      const status = await dispatchControl(t.link.api, "status", undefined);
      assert.equal(status.ok, true);
      assert.equal(unwrapControlOutcome("status", status).port, t.port);

      // Without an authority, listing requests fails inside the core with a LinkError.
      const failed: ControlOutcome = await dispatchControl(t.link.api, "listRequests", {});
      if (failed.ok) assert.fail("listRequests without an authority should fail");
      const code = failed.error.code;
      assert.notEqual(code, "internal_error");
      // As it crosses IPC: a value, structured-cloned, then rethrown as a LinkError with the same code.
      const crossed: unknown = structuredClone(failed);
      assert.throws(
        () => unwrapControlOutcome("listRequests", crossed),
        (err: unknown) => err instanceof LinkError && err.code === code,
      );
      assert.throws(
        () => unwrapControlOutcome("status", { ok: true, result: { nope: 1 } }),
        (err: unknown) => err instanceof LinkError && err.code === "internal_error",
      );
    } finally {
      await t.stop();
    }
  });

  it("createLinkApi has one function per control method, each forwarding to `call`", async () => {
    const seen: string[] = [];
    const api = createLinkApi((method) => {
      seen.push(method);
      return Promise.reject(new LinkError("not_running", "test transport"));
    });
    assert.deepEqual(Object.keys(api).sort(), [...CONTROL_METHOD_NAMES].sort());
    await assert.rejects(api.status({}), (err: unknown) => err instanceof LinkError && err.code === "not_running");
    assert.deepEqual(seen, ["status"]);
  });
});

describe("Electron shell policies", () => {
  it("opens only the authority's exact sign-in paths in the system browser", () => {
    const authority = "https://127.0.0.1:31478";
    const table: Array<[string, boolean]> = [
      ["https://127.0.0.1:31478/oauth/authorize?client_id=piper-link&state=x", true],
      ["https://127.0.0.1:31478/device", true],
      ["https://127.0.0.1:31478/device?user_code=ABCD-EFGH", true],
      ["https://127.0.0.1:31478/device-x", false],
      ["https://127.0.0.1:31478/device/", false],
      ["https://127.0.0.1:31478/oauth/authorize-evil", false],
      ["https://127.0.0.1:31478/oauth/authorizex", false],
      ["https://127.0.0.1:31478/oauth/token", false],
      ["https://127.0.0.1:31479/device", false],
      ["http://127.0.0.1:31478/device", false],
      ["https://evil.example/device", false],
      ["https://user:pw@127.0.0.1:31478/device", false],
      ["file:///etc/passwd", false],
      ["not a url", false],
    ];
    for (const [url, allowed] of table) assert.equal(isAuthoritySignInUrl(url, authority), allowed, url);
    assert.equal(isAuthoritySignInUrl("https://127.0.0.1:31478/device", null), false);
  });

  it("for the embedded authority, opens only the Link's own origin's sign-in pages, never the self-signed authority's (issue 15 item 3)", () => {
    const status = { port: 31477, authority: { url: "https://127.0.0.1:31478", mode: "embedded" as const } };
    const origin = signInPagesOrigin(status);
    assert.equal(origin, "http://127.0.0.1:31477");
    const table: Array<[string, boolean]> = [
      ["http://127.0.0.1:31477/oauth/authorize?client_id=piper-link&state=x", true],
      ["http://127.0.0.1:31477/device?user_code=ABCD-EFGH", true],
      ["http://127.0.0.1:31477/login", false],
      ["http://127.0.0.1:31477/ui/", false],
      ["http://localhost:31477/device", false],
      ["https://127.0.0.1:31477/device", false],
      ["https://127.0.0.1:31478/device", false],
      ["https://127.0.0.1:31478/oauth/authorize?client_id=piper-link", false],
    ];
    for (const [url, allowed] of table) assert.equal(isAuthoritySignInUrl(url, origin), allowed, url);
    assert.equal(
      signInPagesOrigin({ port: 31477, authority: { url: "https://piper.example.com/base", mode: "remote" } }),
      "https://piper.example.com",
    );
    assert.equal(signInPagesOrigin({ port: 31477, authority: null }), null);
  });

  it("accepts IPC only from the window's own page", () => {
    const own = "file:///opt/piper/resources/app.asar/out/renderer/index.html";
    assert.equal(isOwnPageUrl(own, own), true);
    assert.equal(isOwnPageUrl(`${own}#/requests`, own), true);
    assert.equal(isOwnPageUrl("file:///opt/piper/resources/app.asar/out/renderer/other.html", own), false);
    assert.equal(isOwnPageUrl("https://evil.example/renderer/x", own), false);
    assert.equal(isOwnPageUrl(undefined, own), false);
    assert.equal(isOwnPageUrl("http://localhost:5173/index.html", "http://localhost:5173/"), true);
    assert.equal(isOwnPageUrl("http://localhost:5174/", "http://localhost:5173/"), false);
  });
});

// Another user of the same machine (tried as `nobody`, via runuser, as a review found) must reach
// nothing of this user's sign-in: not the embedded authority (where it could create an account and
// hand the Link a code for it), not the browser sign-in's one-shot callback listener.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { LinkStatusSchema } from "../src/shared/control.js";
import { BIN, cliJson, newEnv, stopAll } from "./cli-helpers.js";
import { waitFor } from "./helpers.js";

after(stopAll);

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const canRunAsNobody =
  process.platform === "linux" &&
  isRoot &&
  spawnSync("sh", ["-c", "command -v runuser && command -v curl"]).status === 0;

/** `curl` as `nobody`: the HTTP status it got (000 when the connection failed). */
function curlAsNobody(url: string): string {
  const r = spawnSync("runuser", ["-u", "nobody", "--", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url], {
    encoding: "utf8",
    timeout: 20_000,
  });
  return r.stdout.trim();
}

describe(
  "another local user reaches nothing of the sign-in",
  { skip: canRunAsNobody ? false : "needs Linux, root, runuser and curl to act as a second user" },
  () => {
    it("the embedded authority answers 403 foreign_user to another user, and serves this one", async () => {
      const e = await newEnv();
      const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
      const authority = status.authority?.url;
      assert.ok(authority);
      assert.equal(curlAsNobody(`${authority}/healthz`), "403");
      assert.equal(curlAsNobody(`${authority}/signup`), "403");
      const own = spawnSync("curl", ["-sk", "-o", "/dev/null", "-w", "%{http_code}", `${authority}/healthz`], {
        encoding: "utf8",
      });
      assert.equal(own.stdout.trim(), "200");
    });

    it("the sign-in callback listener refuses another user's request, even with the right state, and keeps waiting", async () => {
      const e = await newEnv();
      cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
      const login = spawn(process.execPath, [BIN, "login", "--no-browser"], {
        env: e.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      login.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      let exited = false;
      login.once("exit", () => (exited = true));
      try {
        await waitFor(() => /oauth\/authorize\?\S+/.test(stderr), "the sign-in address");
        const authorize = new URL(/(https?:\/\/\S+\/oauth\/authorize\?\S+)/.exec(stderr)?.[1] ?? "");
        const callback = new URL(authorize.searchParams.get("redirect_uri") ?? "");
        callback.searchParams.set("code", "pac_from_another_user");
        callback.searchParams.set("state", authorize.searchParams.get("state") ?? "");
        assert.equal(curlAsNobody(callback.toString()), "403");
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(exited, false, "the sign-in is still waiting for the real callback");
      } finally {
        login.kill();
      }
    });
  },
);

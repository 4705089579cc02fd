// The authority over real HTTPS: pyper-sdk's exact wire protocol (three POSTs, https, verified
// against the self-signed certificate), error bodies, limits, and several standalone processes
// sharing one PostgreSQL with events crossing between them (LISTEN/NOTIFY).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { AuthorityKeys } from "../src/shared/authority-process.js";
import { PYPER_PATHS } from "../src/server/http.js";
import { BIN } from "./cli-helpers.js";
import { ENGINES, PG_SKIP, postgresDatabase, type TestDatabase } from "./db-helpers.js";
import { tempDir, waitFor } from "./helpers.js";
import { newAuthorityKeys, presentApprove } from "./presence-helpers.js";

interface Served {
  url: string;
  cert: string;
  child: ChildProcess;
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill();
});

/** Serves with the keys given on stdin, as the Link's embedded authority gets them (link-mac proofs of presence). */
async function serve(db: string, keys: AuthorityKeys, tlsDir: string): Promise<Served> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      "authority",
      "serve",
      "--db",
      db,
      "--listen",
      "127.0.0.1:0",
      "--tls-dir",
      tlsDir,
      "--pyper-endpoints",
      "--keys-on-stdin",
    ],
    { env: process.env, stdio: ["pipe", "pipe", "pipe"] },
  );
  children.push(child);
  child.stdin.end(`${JSON.stringify(keys)}\n`);
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
    });
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.once("exit", (code) => reject(new Error(`authority exited ${code}: ${err}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return { url, cert: await fs.readFile(path.join(tlsDir, "tls.crt"), "utf8"), child };
}

function createUser(db: string, keys: AuthorityKeys): { userId: string; linkToken: string } {
  const r = spawnSync(process.execPath, [BIN, "authority", "create-user", "--db", db, "--keys-on-stdin"], {
    input: `${JSON.stringify(keys)}\n`,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { userId: string; linkToken: string };
}

/** An HTTPS call that verifies the server against its own certificate, as a pinned client would. */
function call(
  s: Served,
  method: string,
  pathName: string,
  body?: unknown,
  token?: string,
  rawBody?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    const req = https.request(
      new URL(pathName, s.url),
      {
        method,
        ca: s.cert,
        headers: {
          ...(payload !== undefined ? { "Content-Type": "application/json" } : {}),
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }),
        );
      },
    );
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

async function setup(
  db: TestDatabase,
): Promise<{ s: Served; token: string; instanceId: string; keys: AuthorityKeys; approvalKey: Buffer; tlsDir: string }> {
  const { keys, approvalKey } = newAuthorityKeys();
  const tlsDir = path.join(await tempDir("piper-tls-"), "tls");
  const { linkToken } = createUser(db.location, keys);
  const s = await serve(db.location, keys, tlsDir);
  const inst = await call(s, "POST", "/v1/instances", { name: "test" }, linkToken);
  assert.equal(inst.status, 201);
  return { s, token: linkToken, instanceId: String(inst.json["instanceId"]), keys, approvalKey, tlsDir };
}

for (const engine of ENGINES) {
  describe(`authority over HTTPS on ${engine.name}`, { skip: engine.skip }, () => {
    it("speaks pyper-sdk's wire protocol: mapping_not_found first, then scoped credentials and secret_value after approval", async () => {
      const db = await engine.make();
      try {
        const { s, token, instanceId, approvalKey } = await setup(db);
        assert.equal(
          (await call(s, "PUT", "/v1/secrets/OPENAI_API_KEY", { value: "sk-pyper-wire" }, token)).status,
          200,
        );
        const ident = { agentClientId: "pyper_agent_1", instanceId };
        const miss = await call(s, "POST", PYPER_PATHS.resolveMapping, { ...ident, variableName: "openai_api_key" });
        assert.equal(miss.status, 404);
        assert.equal(miss.json["error"], "mapping_not_found");
        assert.equal(typeof miss.json["error_description"], "string");
        const pending = await call(s, "GET", "/v1/requests", undefined, token);
        const [first] = pending.json as unknown as Array<{ id: string; agentClientId: string }>;
        assert.ok(first);
        assert.equal(first.agentClientId, "pyper_agent_1");
        assert.equal(
          (
            await call(
              s,
              "POST",
              `/v1/requests/${first.id}/approve`,
              presentApprove(approvalKey, first.id, { scope: { kind: "until_revoked" } }),
              token,
            )
          ).status,
          200,
        );

        const mapping = await call(s, "POST", PYPER_PATHS.resolveMapping, { ...ident, variableName: "openai_api_key" });
        assert.equal(mapping.status, 200);
        const credentialId = String(mapping.json["credentialId"]);
        const scoped = await call(s, "POST", PYPER_PATHS.scopedCredentials, {
          ...ident,
          credentialIds: [credentialId],
        });
        assert.equal(scoped.status, 200);
        assert.deepEqual(scoped.json["granted_credential_ids"], [credentialId]);
        assert.equal(typeof scoped.json["access_token"], "string");
        assert.ok(Number(scoped.json["expires_in"]) > 0);
        const raw = await call(s, "POST", PYPER_PATHS.exchangeSecret, { ...ident, piperCredentialId: credentialId });
        assert.deepEqual([raw.status, raw.json], [200, { secret_value: "sk-pyper-wire" }]);
        // Unknown instance -> 401 (PiperAuthError); another agent -> 403 (PiperForbiddenError).
        assert.equal(
          (
            await call(s, "POST", PYPER_PATHS.resolveMapping, {
              agentClientId: "x",
              instanceId: "inst_nope",
              variableName: "a",
            })
          ).status,
          401,
        );
        const other = await call(s, "POST", PYPER_PATHS.scopedCredentials, {
          agentClientId: "intruder",
          instanceId,
          credentialIds: [credentialId],
        });
        assert.deepEqual([other.status, other.json["error"]], [403, "permission_denied"]);
      } finally {
        await db.drop();
      }
    });

    it("pyper endpoints serve only grants for any program: a caller holding the ID of a program-, session- or process-bound, use-only or other instance's grant gets no token and no value", async () => {
      const db = await engine.make();
      try {
        const { s, token, instanceId, approvalKey } = await setup(db);
        const other = await call(s, "POST", "/v1/instances", { name: "other machine" }, token);
        const otherInstance = String(other.json["instanceId"]);
        const program = {
          pid: 4242,
          executable: "/usr/bin/node",
          cwd: "/home/pat/prog1",
          commandLine: ["node", "agent.mjs"],
          startTime: 777,
          script: "/home/pat/prog1/agent.mjs",
          sessionId: 4000,
          sessionLeader: { pid: 4000, startTime: 700, executable: "/usr/bin/bash" },
        };
        const cases: Array<{ variable: string; body: Record<string, unknown>; on?: string }> = [
          { variable: "PROGRAM_KEY", body: { scope: { kind: "until_revoked" }, binding: "program" } },
          { variable: "SESSION_KEY", body: { scope: { kind: "until_revoked" }, binding: "session" } },
          { variable: "PROCESS_KEY", body: { scope: { kind: "until_revoked" }, binding: "process" } },
          {
            variable: "USE_ONLY_KEY",
            body: {
              scope: { kind: "until_revoked" },
              binding: "client",
              mode: { kind: "use", destinations: [{ host: "api.example.com" }] },
            },
          },
          {
            variable: "OTHER_INSTANCE_KEY",
            body: { scope: { kind: "until_revoked" }, binding: "client" },
            on: otherInstance,
          },
        ];
        const ids: string[] = [];
        for (const c of cases) {
          assert.equal(
            (await call(s, "PUT", `/v1/secrets/${c.variable}`, { value: `value-of-${c.variable}` }, token)).status,
            200,
          );
          const asked = await call(
            s,
            "POST",
            "/v1/agent/resolve",
            { instanceId: c.on ?? instanceId, agentClientId: "bound_agent", variable: c.variable, process: program },
            token,
          );
          assert.equal(asked.json["status"], "pending", JSON.stringify(asked.json));
          const requestId = String(asked.json["requestId"]);
          const approved = await call(
            s,
            "POST",
            `/v1/requests/${requestId}/approve`,
            presentApprove(approvalKey, requestId, c.body as never),
            token,
          );
          assert.equal(approved.status, 200, JSON.stringify(approved.json));
          ids.push(String(approved.json["grantId"] ?? approved.json["id"]));
        }
        const grants = (await call(s, "GET", "/v1/grants", undefined, token)).json as unknown as Array<{
          id: string;
          variable: string;
        }>;
        assert.equal(grants.length, cases.length);
        const ident = { agentClientId: "bound_agent", instanceId };
        for (const g of grants) {
          const scoped = await call(s, "POST", PYPER_PATHS.scopedCredentials, { ...ident, credentialIds: [g.id] });
          assert.deepEqual([g.variable, scoped.status, scoped.json["error"]], [g.variable, 403, "permission_denied"]);
          const raw = await call(s, "POST", PYPER_PATHS.exchangeSecret, { ...ident, piperCredentialId: g.id });
          assert.equal(raw.json["secret_value"], undefined, g.variable);
          assert.notEqual(raw.status, 200);
        }
        // The program's own route still serves it: the binding, not the grant, decides.
        const own = await call(
          s,
          "POST",
          "/v1/agent/resolve",
          { instanceId, agentClientId: "bound_agent", variable: "PROGRAM_KEY", process: program },
          token,
        );
        assert.deepEqual([own.json["status"], own.json["value"]], ["granted", "value-of-PROGRAM_KEY"]);
      } finally {
        await db.drop();
      }
    });

    it("answers bad input with {error, error_description} and stable codes", async () => {
      const db = await engine.make();
      try {
        const { s, token, instanceId, approvalKey } = await setup(db);
        const cases: Array<[Promise<{ status: number; json: Record<string, unknown> }>, number, string]> = [
          [call(s, "GET", "/v1/secrets"), 401, "invalid_token"],
          [call(s, "GET", "/v1/secrets", undefined, "plt_wrong"), 401, "invalid_token"],
          // Agent routes need the Link's credential first (issue 13 item 3), then a valid body.
          [
            call(s, "POST", "/v1/agent/resolve", { instanceId, agentClientId: "a", variable: "X" }),
            401,
            "invalid_token",
          ],
          [call(s, "POST", "/v1/agent/resolve", undefined, token, "{not json"), 400, "invalid_request"],
          [call(s, "POST", "/v1/agent/resolve", { instanceId, agentClientId: "a" }, token), 400, "invalid_request"],
          [
            call(
              s,
              "POST",
              "/v1/agent/resolve",
              { instanceId, agentClientId: "a", variable: "x".repeat(70_000) },
              token,
            ),
            413,
            "request_too_large",
          ],
          [call(s, "PUT", "/v1/secrets/bad%20name", { value: "v" }, token), 400, "invalid_request"],
          [
            call(
              s,
              "POST",
              "/v1/requests/req_none/approve",
              presentApprove(approvalKey, "req_none", { scope: { kind: "once" } }),
              token,
            ),
            404,
            "request_not_found",
          ],
          [
            call(s, "POST", "/v1/requests/req_none/approve", { scope: { kind: "once" } }, token),
            403,
            "presence_required",
          ],
          [
            call(s, "POST", "/v1/requests/req_none/approve", { scope: { kind: "forever" } }, token),
            400,
            "invalid_request",
          ],
          [call(s, "GET", "/nowhere"), 404, "not_found"],
        ];
        for (const [p, status, code] of cases) {
          const r = await p;
          assert.deepEqual([r.status, r.json["error"]], [status, code], JSON.stringify(r.json));
          assert.equal(typeof r.json["error_description"], "string");
        }
      } finally {
        await db.drop();
      }
    });
  });
}

describe("pyper-sdk style client in Python (urllib, certificate verified)", () => {
  const python = spawnSync("python3", ["--version"]);
  it(
    "gets mapping_not_found, then secret_value after approval",
    { skip: python.error ? "python3 is not installed" : false },
    async () => {
      const db = await ENGINES[0]?.make();
      assert.ok(db);
      try {
        const { s, token, instanceId, tlsDir, approvalKey } = await setup(db);
        await call(s, "PUT", "/v1/secrets/NOTION_TOKEN", { value: "ntn-python-value" }, token);
        // The three calls exactly as pyper-sdk makes them: JSON POSTs to https URLs, no token on the exchange.
        const script = `
import json, ssl, sys, urllib.request, urllib.error
base, instance, ca = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def post(path, payload):
    req = urllib.request.Request(base + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=12) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
ident = {"agentClientId": "py_real", "instanceId": instance}
st, body = post("${PYPER_PATHS.resolveMapping}", {**ident, "variableName": "notion_token"})
if st != 200:
    print(json.dumps({"step": "resolve", "status": st, "error": body.get("error")})); sys.exit(0)
cred = body["credentialId"]
st, body = post("${PYPER_PATHS.scopedCredentials}", {**ident, "credentialIds": [cred]})
granted = body["granted_credential_ids"][0]
st, body = post("${PYPER_PATHS.exchangeSecret}", {**ident, "piperCredentialId": granted})
print(json.dumps({"step": "exchange", "status": st, "value": body.get("secret_value")}))
`;
        const run = () =>
          JSON.parse(
            spawnSync("python3", ["-c", script, s.url, instanceId, path.join(tlsDir, "tls.crt")], {
              encoding: "utf8",
            }).stdout.trim(),
          ) as Record<string, unknown>;
        assert.deepEqual(run(), { step: "resolve", status: 404, error: "mapping_not_found" });
        const list = (await call(s, "GET", "/v1/requests", undefined, token)).json as unknown as Array<{ id: string }>;
        await call(
          s,
          "POST",
          `/v1/requests/${list[0]?.id ?? ""}/approve`,
          presentApprove(approvalKey, list[0]?.id ?? "", { scope: { kind: "once" } }),
          token,
        );
        assert.deepEqual(run(), { step: "exchange", status: 200, value: "ntn-python-value" });
        assert.deepEqual(
          run(),
          { step: "resolve", status: 404, error: "mapping_not_found" },
          "a once grant is used up by the exchange",
        );
      } finally {
        await db.drop();
      }
    },
  );
});

describe("several standalone authorities on one PostgreSQL", { skip: PG_SKIP }, () => {
  it("serve the same user consistently: an approval on one wakes an agent waiting on the other", async () => {
    const db = await postgresDatabase();
    try {
      const a = await setup(db);
      const b = { s: await serve(db.location, a.keys, a.tlsDir) };
      await call(a.s, "PUT", "/v1/secrets/SHARED", { value: "shared-value" }, a.token);
      // Written through A, visible through B.
      const secrets = (await call(b.s, "GET", "/v1/secrets", undefined, a.token)).json as unknown as Array<{
        name: string;
      }>;
      assert.deepEqual(
        secrets.map((x) => x.name),
        ["SHARED"],
      );
      const ident = { instanceId: a.instanceId, agentClientId: "agent_multi" };
      const pending = await call(a.s, "POST", "/v1/agent/resolve", { ...ident, variable: "SHARED" }, a.token);
      assert.equal(pending.status, 202);
      const requestId = String(pending.json["requestId"]);
      const waiting = call(
        a.s,
        "POST",
        `/v1/agent/requests/${requestId}/wait`,
        { ...ident, timeoutMs: 20_000 },
        a.token,
      );
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(
        (
          await call(
            b.s,
            "POST",
            `/v1/requests/${requestId}/approve`,
            presentApprove(a.approvalKey, requestId, { scope: { kind: "until_revoked" } }),
            a.token,
          )
        ).status,
        200,
      );
      const outcome = await waiting;
      assert.equal(outcome.json["status"], "approved");
      assert.ok(Date.now() - started < 10_000, "woken by the notification, not by the timeout");
      const value = await call(b.s, "POST", "/v1/agent/resolve", { ...ident, variable: "SHARED" }, a.token);
      assert.deepEqual([value.status, value.json["value"]], [200, "shared-value"]);
      await waitFor(
        async () =>
          ((await call(a.s, "GET", "/v1/audit?limit=50", undefined, a.token)).json["events"] as unknown[]).length >= 5,
        "audit entries from both processes",
      );
    } finally {
      await db.drop();
    }
  });
});

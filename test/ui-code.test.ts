// `piper-link ui` without a reusable token in any process's argv (issue 16 item 8): the CLI asks
// the running Link for a single-use, 60-second code, opens `/ui/#code=…`, and the page trades the
// code once over the control WebSocket for the control token. Real Link (compiled CLI), real
// sockets, a fake browser opener that records its argv.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { after, describe, it } from "node:test";
import WebSocket from "ws";
import { z } from "zod";
import {
  ControlFileSchema,
  ControlServerMessageSchema,
  LinkStatusSchema,
  type ControlServerMessage,
} from "../src/shared/control.js";
import { CloseCode } from "../src/shared/protocol.js";
import { CONTROL_SUBPROTOCOL } from "../src/shared/version.js";
import { createUiCodes, UI_CODE_MAX_OUTSTANDING, UI_CODE_TTL_MS } from "../src/main/core/loopback/ui-codes.js";
import { cli, cliJson, newEnv, stopAll } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);

const UiSchema = z.object({ url: z.string(), expiresAt: z.string(), opened: z.boolean() });

/** Opens the control channel, sends `auth` with `credential`, and returns the first reply and the close code. */
async function authenticate(
  port: number,
  credential: { code: string } | { token: string },
): Promise<{ reply: ControlServerMessage; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL);
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const reply = new Promise<ControlServerMessage>((resolve) =>
    ws.once("message", (data) =>
      resolve(ControlServerMessageSchema.parse(JSON.parse(Buffer.isBuffer(data) ? data.toString("utf8") : "null"))),
    ),
  );
  ws.send(JSON.stringify({ type: "auth", ...credential }));
  const first = await reply;
  ws.close(1000);
  return { reply: first, closed };
}

describe("UI codes (the store)", () => {
  it("a code works once, before it expires, and only if it was issued", () => {
    let t = 1_000_000;
    const codes = createUiCodes({ now: () => t });
    const a = codes.issue();
    assert.match(a.code, /^[A-Za-z0-9_-]{22}$/, "128 random bits, base64url");
    assert.equal(a.expiresAt, t + UI_CODE_TTL_MS);
    assert.equal(codes.redeem(a.code), true);
    assert.equal(codes.redeem(a.code), false, "a second use fails");

    const b = codes.issue();
    t += UI_CODE_TTL_MS; // exactly 60 s later: expired
    assert.equal(codes.redeem(b.code), false, "an expired code fails");

    const c = codes.issue();
    t += UI_CODE_TTL_MS - 1;
    assert.equal(codes.redeem(c.code.slice(0, -1) + (c.code.endsWith("A") ? "B" : "A")), false, "a guessed code fails");
    assert.equal(codes.redeem(c.code), true, "a wrong guess does not spend the real code; 59.999 s is still in time");
  });

  it("keeps at most UI_CODE_MAX_OUTSTANDING codes, dropping the oldest", () => {
    const codes = createUiCodes({ now: () => 0 });
    const first = codes.issue();
    const rest = Array.from({ length: UI_CODE_MAX_OUTSTANDING }, () => codes.issue());
    assert.equal(codes.redeem(first.code), false);
    assert.ok(rest.every((r) => codes.redeem(r.code)));
  });
});

describe("piper-link ui (real Link)", () => {
  it("prints a single-use address; the code signs in once and a second use is refused", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const control = ControlFileSchema.parse(JSON.parse(await fs.readFile(e.paths.controlFile, "utf8")));

    const ui = cliJson(e, ["ui", "--print"], UiSchema);
    assert.equal(ui.opened, false);
    const code = /#code=([A-Za-z0-9_-]+)$/.exec(ui.url)?.[1];
    assert.ok(code !== undefined, ui.url);
    assert.equal(ui.url, `http://127.0.0.1:${status.port}/ui/#code=${code}`);
    assert.ok(!ui.url.includes(control.token));
    const expiresIn = Date.parse(ui.expiresAt) - Date.now();
    assert.ok(expiresIn > 50_000 && expiresIn <= 60_000, `expires in ${expiresIn} ms`);

    const human = cli(e, ["ui", "--print"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /works once, within 60 seconds/);
    assert.match(cli(e, ["ui", "--help"]).stdout, /once, for 60 seconds/);

    // First use: authenticated, and the reply hands the page the token to keep for reconnecting.
    const once = await authenticate(status.port, { code });
    assert.equal(once.reply.type, "authenticated");
    assert.equal(once.reply.token, control.token);

    // Second use: refused and closed.
    const twice = await authenticate(status.port, { code });
    assert.equal(twice.reply.type, "error");
    assert.equal(twice.reply.code, "unauthorized");
    assert.equal(await twice.closed, CloseCode.unauthorized);

    // A token login says nothing about the token (the CLI already has it).
    const byToken = await authenticate(status.port, { token: control.token });
    assert.equal(byToken.reply.type, "authenticated");
    assert.equal(byToken.reply.token, undefined);
  });

  it("the browser opener's argv (what `ps` shows) carries the code, never the control token", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    const control = ControlFileSchema.parse(JSON.parse(await fs.readFile(e.paths.controlFile, "utf8")));
    // A fake `xdg-open` first on PATH records the arguments it was started with.
    const bin = await tempDir("piper-link-opener-");
    const record = path.join(bin, "argv.json");
    const opener = path.join(bin, "xdg-open");
    await fs.writeFile(
      opener,
      `#!${process.execPath}\nrequire("node:fs").writeFileSync(${JSON.stringify(record)}, JSON.stringify(process.argv.slice(2)));\n`,
      { mode: 0o755 },
    );
    const env: NodeJS.ProcessEnv = { ...e.env, PATH: `${bin}:${e.env["PATH"] ?? ""}`, DISPLAY: ":99" };
    delete env["SSH_CONNECTION"];
    delete env["WAYLAND_DISPLAY"];
    const r = cli({ ...e, env }, ["ui"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Opening Piper Link in your browser/);
    await waitFor(
      () =>
        fs.access(record).then(
          () => true,
          () => false,
        ),
      "the opener ran",
    );
    const argv = z.array(z.string()).parse(JSON.parse(await fs.readFile(record, "utf8")));
    assert.equal(argv.length, 1);
    assert.match(argv[0] ?? "", new RegExp(`^http://127\\.0\\.0\\.1:${status.port}/ui/#code=[A-Za-z0-9_-]{22}$`));
    assert.ok(!argv.join(" ").includes(control.token), "no control token in the opener's argv");
  });
});

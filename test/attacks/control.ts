/**
 * The control channel as an attacker of the same user reaches it: the token read from the Link's
 * 0600 control file (readable by every process of the user), a raw WebSocket, and the calls given
 * as JSON in argv[2] (`[{method, params}]`). Prints one JSON line: each call's result or error code.
 */
import fs from "node:fs";
import WebSocket from "ws";
import { platformEnv, readLinkEnv } from "../../src/main/core/runtime/env.js";
import { resolveLinkPaths } from "../../src/main/core/runtime/paths.js";
import { CONTROL_SUBPROTOCOL } from "../../src/shared/version.js";

interface Attempt {
  method: string;
  params: Record<string, unknown>;
}
interface Answer {
  type?: string;
  id?: number | null;
  code?: string;
  message?: string;
  result?: unknown;
}

const calls = JSON.parse(process.argv[2] ?? "[]") as Attempt[];
const control = JSON.parse(
  fs.readFileSync(
    resolveLinkPaths(process.env["PIPER_LINK_PROFILE"] ?? "default", platformEnv(readLinkEnv(process.env))).controlFile,
    "utf8",
  ),
) as { url: string; token: string };
const ws = new WebSocket(control.url, CONTROL_SUBPROTOCOL);
const answers: Answer[] = [];
let wake: (() => void) | null = null;
ws.on("message", (data: Buffer) => {
  answers.push(JSON.parse(data.toString("utf8")) as Answer);
  wake?.();
});
async function next(pred: (a: Answer) => boolean): Promise<Answer> {
  for (;;) {
    const at = answers.findIndex(pred);
    if (at >= 0) return answers.splice(at, 1)[0] ?? {};
    await new Promise<void>((resolve) => (wake = resolve));
  }
}
await new Promise<void>((resolve, reject) => {
  ws.once("open", () => resolve());
  ws.once("error", reject);
});
ws.send(JSON.stringify({ type: "auth", token: control.token }));
await next((a) => a.type === "authenticated");
const out: { method: string; ok: boolean; code?: string; message?: string; result?: unknown }[] = [];
let id = 1;
for (const { method, params } of calls) {
  const callId = id++;
  ws.send(JSON.stringify({ type: "call", id: callId, method, params }));
  const a = await next((x) => x.id === callId);
  out.push(
    a.type === "result"
      ? { method, ok: true, result: a.result }
      : {
          method,
          ok: false,
          ...(a.code !== undefined ? { code: a.code } : {}),
          ...(a.message !== undefined ? { message: a.message } : {}),
        },
  );
}
ws.close(1000);
process.stdout.write(`${JSON.stringify(out)}\n`);

/**
 * The CLI's side of the control channel: finds the running Link through its control file, connects,
 * authenticates with the token, and calls LinkApi methods with validated results.
 */
import WebSocket from "ws";
import {
  ControlFileSchema,
  ControlMethods,
  ControlServerMessageSchema,
  type ControlMethod,
  type ControlParams,
  type ControlResult,
} from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { CONTROL_SUBPROTOCOL } from "../../shared/version.js";
import { isPidAlive, readFileOrNull } from "./files.js";

export interface ControlClient {
  call<M extends ControlMethod>(method: M, params: ControlParams<M>): Promise<ControlResult<M>>;
  close(): void;
}

/** Returns a connected client, or null when no Link is running for this control file. */
export async function connectToRunningLink(controlFile: string, timeoutMs = 5000): Promise<ControlClient | null> {
  const text = await readFileOrNull(controlFile);
  if (text === null) return null;
  let info;
  try {
    info = ControlFileSchema.parse(JSON.parse(text));
  } catch {
    return null;
  }
  if (!isPidAlive(info.pid)) return null;
  try {
    return await connectControl(info.url, info.token, timeoutMs);
  } catch (err) {
    // A control file whose port refuses connections belongs to a Link that died without cleaning up.
    if (err instanceof LinkError && /ECONNREFUSED/.test(err.message)) return null;
    throw err;
  }
}

export function connectControl(url: string, token: string, timeoutMs = 5000): Promise<ControlClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, CONTROL_SUBPROTOCOL, { handshakeTimeout: timeoutMs });
    const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    let nextId = 1;
    let ready = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new LinkError("not_running", `Piper Link did not answer on ${url} within ${timeoutMs} ms.`));
    }, timeoutMs);

    const client: ControlClient = {
      call(method, params) {
        const id = nextId++;
        ws.send(JSON.stringify({ type: "call", id, method, params }));
        return new Promise((res, rej) => {
          waiting.set(id, {
            resolve: (v) => {
              try {
                res(ControlMethods[method].result.parse(v) as ControlResult<typeof method>);
              } catch (err) {
                rej(err instanceof Error ? err : new Error(String(err)));
              }
            },
            reject: rej,
          });
        });
      },
      close: () => ws.close(1000),
    };

    ws.on("open", () => ws.send(JSON.stringify({ type: "auth", token })));
    ws.on("message", (data: Buffer) => {
      let frame: unknown;
      try {
        frame = JSON.parse(data.toString("utf8"));
      } catch {
        return;
      }
      const parsed = ControlServerMessageSchema.safeParse(frame);
      if (!parsed.success) return;
      const msg = parsed.data;
      if (msg.type === "authenticated") {
        ready = true;
        clearTimeout(timer);
        resolve(client);
      } else if (msg.type === "result") {
        waiting.get(Number(msg.id))?.resolve(msg.result);
        waiting.delete(Number(msg.id));
      } else if (msg.type === "error") {
        const err = new LinkError(msg.code, msg.message);
        if (msg.id === null) {
          if (!ready) reject(err);
          return;
        }
        waiting.get(Number(msg.id))?.reject(err);
        waiting.delete(Number(msg.id));
      }
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      if (!ready) reject(new LinkError("not_running", `Could not reach Piper Link at ${url}: ${err.message}`));
    });
    ws.on("close", () => {
      clearTimeout(timer);
      for (const w of waiting.values()) w.reject(new LinkError("not_running", "Piper Link closed the connection."));
      waiting.clear();
    });
  });
}

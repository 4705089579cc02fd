/**
 * The CLI's side of the control channel: finds the running Link through its control file, connects,
 * authenticates with the token, and calls LinkApi methods with validated results.
 */
import WebSocket from "ws";
import {
  ControlFileSchema,
  type ControlMethod,
  type ControlParams,
  type ControlResult,
} from "../../../shared/control.js";
import { ControlConnection } from "../../../shared/control-connection.js";
import { LinkError } from "../../../shared/errors.js";
import { CONTROL_SUBPROTOCOL } from "../../../shared/version.js";
import { isPidAlive, readFileOrNull } from "../runtime/files.js";

export interface ControlClient {
  /** The control token, for building the browser UI's address (it goes in the URL fragment). */
  readonly token: string;
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
  const ws = new WebSocket(url, CONTROL_SUBPROTOCOL, { handshakeTimeout: timeoutMs });
  const connection = new ControlConnection({ send: (text) => ws.send(text), close: () => ws.close(1000) }, token);
  let failure: string | null = null;
  ws.on("open", () => connection.opened());
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) connection.received(data.toString("utf8"));
  });
  ws.on("error", (err) => {
    failure = `Could not reach Piper Link at ${url}: ${err.message}`;
  });
  ws.on("close", () => connection.closedBy(failure ?? "Piper Link closed the connection."));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ws.terminate();
      reject(new LinkError("not_running", `Piper Link did not answer on ${url} within ${timeoutMs} ms.`));
    }, timeoutMs);
  });
  const client: ControlClient = {
    token,
    call: (method, params) => connection.call(method, params),
    close: () => connection.close(),
  };
  return Promise.race([connection.ready, timeout]).then(
    () => {
      clearTimeout(timer);
      return client;
    },
    (err: unknown) => {
      clearTimeout(timer);
      ws.terminate();
      throw err;
    },
  );
}

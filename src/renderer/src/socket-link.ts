/**
 * The browser transport of the LinkApi (headless mode): the token-authenticated control WebSocket
 * of the Link that served this page. Calls made while (re)connecting wait for the connection;
 * when the Link restarts, the page reconnects by itself with backoff. A refused token is final.
 *
 * How the page gets the token (issue 16 item 8): `piper-link ui` opens `/ui/#code=<code>` with a
 * single-use, 60-second code; the page sends it once as `{type:"auth", code}` and the Link answers
 * `authenticated` with the control token, which the page keeps in sessionStorage (this tab only)
 * to reconnect. The token itself never appears in an address or in any process's argv.
 */
import { backoffDelay } from "../../shared/backoff.js";
import { ControlConnection } from "../../shared/control-connection.js";
import { ControlServerMessageSchema, createLinkApi, type ControlEvent, type LinkClient } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { CONTROL_SUBPROTOCOL } from "../../shared/version.js";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "unauthorized";

export interface SocketLinkClient extends LinkClient {
  state(): ConnectionState;
  onState(listener: (state: ConnectionState) => void): () => void;
  close(): void;
}

const CALL_WAIT_MS = 15_000;

export function createSocketLink(url: string, token: string): SocketLinkClient {
  const events = new Set<(event: ControlEvent) => void>();
  const stateListeners = new Set<(state: ConnectionState) => void>();
  let state: ConnectionState = "connecting";
  let connection: ControlConnection | null = null;
  let waiters: Array<() => void> = [];
  let attempt = 0;
  let stopped = false;

  function setState(next: ConnectionState): void {
    if (next === state) return;
    state = next;
    for (const l of stateListeners) l(next);
    if (next === "open") {
      const ready = waiters;
      waiters = [];
      for (const w of ready) w();
    }
  }

  function connect(): void {
    const ws = new WebSocket(url, CONTROL_SUBPROTOCOL);
    const conn = new ControlConnection({ send: (text) => ws.send(text), close: () => ws.close(1000) }, token);
    conn.subscribe((event) => {
      for (const l of events) l(event);
    });
    ws.addEventListener("open", () => conn.opened());
    ws.addEventListener("message", (e: MessageEvent) => {
      if (typeof e.data === "string") conn.received(e.data);
    });
    ws.addEventListener("close", () => {
      conn.closedBy("The connection to Piper Link was lost.");
      if (connection === conn) connection = null;
      if (stopped || state === "unauthorized") return;
      setState("reconnecting");
      setTimeout(connect, backoffDelay(attempt++, { baseMs: 500, capMs: 5000 }));
    });
    conn.ready.then(
      () => {
        connection = conn;
        attempt = 0;
        setState("open");
      },
      (err: unknown) => {
        if (err instanceof LinkError && err.code === "unauthorized") setState("unauthorized");
      },
    );
  }

  function whenOpen(): Promise<ControlConnection> {
    if (connection !== null && connection.isReady) return Promise.resolve(connection);
    if (state === "unauthorized") return Promise.reject(unauthorized());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new LinkError("not_running", "Piper Link is not answering. Is it still running?")),
        CALL_WAIT_MS,
      );
      waiters.push(() => {
        clearTimeout(timer);
        if (connection !== null) resolve(connection);
        else reject(new LinkError("not_running", "The connection to Piper Link was lost."));
      });
    });
  }

  const api = createLinkApi(async (method, params) => (await whenOpen()).call(method, params));

  connect();
  return {
    api,
    subscribe(listener) {
      events.add(listener);
      return () => events.delete(listener);
    },
    state: () => state,
    onState(listener) {
      stateListeners.add(listener);
      return () => stateListeners.delete(listener);
    },
    close() {
      stopped = true;
      connection?.close();
    },
  };
}

function unauthorized(): LinkError {
  return new LinkError(
    "unauthorized",
    "This page's access to Piper Link has expired. Run `piper-link ui` for a new address.",
  );
}

const TOKEN_KEY = "piper-link-token";
const EXCHANGE_WAIT_MS = 15_000;

/** What the address and this tab hold: a single-use code to exchange, a kept token, or nothing. */
export type PageAccess = { kind: "code"; code: string } | { kind: "token"; token: string } | null;

/**
 * Reads the page's access: a `#code=…` from `piper-link ui`, else a `#token=…` (the address a
 * foreground `start` prints on its own terminal), else the token this tab kept. Removes the
 * fragment from the address bar so it is not bookmarked, shared in a screenshot, or kept in history.
 */
export function takeAccessFromLocation(): PageAccess {
  const hash = window.location.hash;
  const code = /(?:^#|&)code=([A-Za-z0-9_-]+)/.exec(hash)?.[1];
  const token = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(hash)?.[1];
  if (code !== undefined || token !== undefined) history.replaceState(null, "", window.location.pathname);
  if (code !== undefined) return { kind: "code", code };
  if (token !== undefined) {
    sessionStorage.setItem(TOKEN_KEY, token);
    return { kind: "token", token };
  }
  const kept = sessionStorage.getItem(TOKEN_KEY);
  return kept === null ? null : { kind: "token", token: kept };
}

/**
 * Trades a single-use UI code for the control token over the control WebSocket at `url` and keeps
 * the token in sessionStorage. Rejects with a LinkError `unauthorized` when the Link refuses the
 * code (already used, expired, unknown) and `not_running` when the Link does not answer.
 */
export function exchangeUiCode(url: string, code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, CONTROL_SUBPROTOCOL);
    let settled = false;
    const finish = (outcome: { token: string } | { error: LinkError }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.close(1000);
      if ("token" in outcome) {
        sessionStorage.setItem(TOKEN_KEY, outcome.token);
        resolve(outcome.token);
      } else reject(outcome.error);
    };
    const timer = setTimeout(
      () => finish({ error: new LinkError("not_running", "Piper Link is not answering. Is it still running?") }),
      EXCHANGE_WAIT_MS,
    );
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", code })));
    ws.addEventListener("message", (e: MessageEvent) => {
      if (typeof e.data !== "string") return;
      let frame: unknown;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      const parsed = ControlServerMessageSchema.safeParse(frame);
      if (!parsed.success) return;
      const msg = parsed.data;
      if (msg.type === "authenticated" && msg.token !== undefined) finish({ token: msg.token });
      else if (msg.type === "error") finish({ error: new LinkError(msg.code, msg.message) });
    });
    ws.addEventListener("close", () =>
      finish({
        error: new LinkError(
          "unauthorized",
          "This address was already used or has expired. Run `piper-link ui` for a new one.",
        ),
      }),
    );
  });
}

/**
 * The browser transport of the LinkApi (headless mode): the token-authenticated control WebSocket
 * of the Link that served this page. Calls made while (re)connecting wait for the connection;
 * when the Link restarts, the page reconnects by itself with backoff. A refused token is final.
 */
import { backoffDelay } from "../../shared/backoff.js";
import { ControlConnection } from "../../shared/control-connection.js";
import { createLinkApi, type ControlEvent, type LinkClient } from "../../shared/control.js";
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
      const timer = setTimeout(() => reject(new LinkError("not_running", "Piper Link is not answering. Is it still running?")), CALL_WAIT_MS);
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
  return new LinkError("unauthorized", "This page's access to Piper Link has expired. Run `piper-link ui` for a new address.");
}

/**
 * Takes the control token from the address (`#token=…`), keeps it for this tab only, and removes it
 * from the address bar so it is not bookmarked, shared in a screenshot, or kept in history.
 */
export function takeTokenFromLocation(): string | null {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(window.location.hash);
  if (match?.[1] !== undefined) {
    sessionStorage.setItem("piper-link-token", match[1]);
    history.replaceState(null, "", window.location.pathname);
    return match[1];
  }
  return sessionStorage.getItem("piper-link-token");
}

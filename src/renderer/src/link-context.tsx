/**
 * How the UI reaches the Link: one `LinkClient` (the LinkApi from src/shared plus pushed events),
 * provided at the root. In Electron it is the preload bridge; in a browser, the control WebSocket.
 * `useLinkData` loads something, and loads it again whenever an event says it may have changed or
 * the connection comes back — the screens never need a refresh button.
 */
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import type { ControlEvent, LinkApi, LinkClient, LinkStatus } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import type { NavigableView } from "../../shared/ipc.js";
import type { ConnectionState } from "./socket-link.js";

interface LinkContextValue {
  client: LinkClient;
  connection: ConnectionState;
  /** True in the Electron window (settings such as start-at-login apply there). */
  desktop: boolean;
  /** The shell asks for a screen (a notification or tray item was clicked); Electron only. */
  onNavigate?: ((listener: (view: NavigableView) => void) => () => void) | undefined;
}

const LinkContext = createContext<LinkContextValue | null>(null);

export function LinkProvider({
  client,
  connection,
  desktop,
  onNavigate,
  children,
}: LinkContextValue & { children: ReactNode }) {
  return <LinkContext.Provider value={{ client, connection, desktop, onNavigate }}>{children}</LinkContext.Provider>;
}

function useLinkContext(): LinkContextValue {
  const value = useContext(LinkContext);
  if (value === null) throw new Error("Piper Link components must be inside <LinkProvider>.");
  return value;
}

export function useLinkApi(): LinkApi {
  return useLinkContext().client.api;
}

export function useConnection(): ConnectionState {
  return useLinkContext().connection;
}

export function useDesktop(): boolean {
  return useLinkContext().desktop;
}

/** Follows the shell's requests to show a screen. */
export function useNavigationRequests(go: (view: NavigableView) => void): void {
  const { onNavigate } = useLinkContext();
  const latest = useRef(go);
  latest.current = go;
  useEffect(() => onNavigate?.((v) => latest.current(v)), [onNavigate]);
}

export function useLinkEvents(listener: (event: ControlEvent) => void): void {
  const { client } = useLinkContext();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => client.subscribe((e) => latest.current(e)), [client]);
}

/** A failure as the person should read it: the stable code's message. */
export interface UiError {
  code: string;
  message: string;
}

export function toUiError(err: unknown): UiError {
  if (err instanceof LinkError) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    // Errors crossing Electron's IPC arrive as "Error invoking remote method '…': LinkError: message".
    const m = /LinkError: (.*)$/s.exec(err.message);
    return { code: "error", message: m?.[1] ?? err.message };
  }
  return { code: "error", message: String(err) };
}

export interface LinkAction {
  /** The key of the action running now (e.g. the request being denied), or null. */
  busy: string | null;
  error: UiError | null;
  clearError: () => void;
  /** Runs `op` with `key` busy; a failure becomes `error` (its stable code's message). True when it succeeded. */
  run: (key: string, op: () => Promise<unknown>) => Promise<boolean>;
}

/** The busy flag and error banner of a screen's actions (approve, revoke, delete, save…). */
export function useLinkAction(): LinkAction {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const run = useCallback(async (key: string, op: () => Promise<unknown>): Promise<boolean> => {
    setBusy(key);
    setError(null);
    try {
      await op();
      return true;
    } catch (err) {
      setError(toUiError(err));
      return false;
    } finally {
      setBusy(null);
    }
  }, []);
  const clearError = useCallback(() => setError(null), []);
  return { busy, error, clearError, run };
}

export interface LinkData<T> {
  data: T | null;
  error: UiError | null;
  loading: boolean;
  reload(): void;
}

/**
 * Loads `load()` now, again when `isRelevant(event)` says an event changed it, and again after a
 * reconnect. A load that finishes after a newer one started is dropped.
 */
export function useLinkData<T>(
  load: (api: LinkApi) => Promise<T>,
  isRelevant: (event: ControlEvent) => boolean,
  deps: unknown[],
): LinkData<T> {
  const api = useLinkApi();
  const connection = useConnection();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(() => {
    const mine = ++generation.current;
    setLoading(true);
    loadRef.current(api).then(
      (value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== generation.current) return;
        setError(toUiError(err));
        setLoading(false);
      },
    );
  }, [api, ...deps]);

  useEffect(() => {
    if (connection === "open") reload();
  }, [reload, connection]);

  useLinkEvents((event) => {
    if (isRelevant(event)) reload();
  });
  return { data, error, loading, reload };
}

export function isAuthority(...types: string[]): (event: ControlEvent) => boolean {
  return (event) => event.kind === "authority" && types.includes(event.event.type);
}

const StatusContext = createContext<LinkStatus | null>(null);

/** Provides the Link's latest status (App keeps it live) to screens deep inside the window. */
export function LinkStatusProvider({ status, children }: { status: LinkStatus; children: ReactNode }) {
  return <StatusContext.Provider value={status}>{children}</StatusContext.Provider>;
}

/** The Link's latest status; throws outside <LinkStatusProvider>. */
export function useLinkStatus(): LinkStatus {
  const status = useContext(StatusContext);
  if (status === null) throw new Error("useLinkStatus must be used inside <LinkStatusProvider>.");
  return status;
}

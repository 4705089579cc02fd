/**
 * The preload bridge (sandboxed, context-isolated): exposes `window.piperLink`, one function per
 * LinkApi method answering a ControlOutcome value (so errors keep their code across IPC), and `window.piperLinkEvents` for pushed events and navigation requests. The
 * renderer never sees ipcRenderer; main validates every call again, and pushed payloads are
 * validated here before the page sees them.
 */
import { contextBridge, ipcRenderer } from "electron";
import { CONTROL_METHOD_NAMES, ControlEventSchema, type ControlEvent, type ControlMethod } from "../shared/control.js";
import {
  LINK_EVENT_CHANNEL,
  LINK_IPC_CHANNEL,
  LINK_NAVIGATE_CHANNEL,
  NAVIGABLE_VIEWS,
  type LinkIpcBridge,
  type NavigableView,
} from "../shared/ipc.js";

function bridge(method: ControlMethod) {
  // Main answers a ControlOutcome value (errors included); the window validates and unwraps it.
  return (params: unknown): Promise<unknown> => ipcRenderer.invoke(LINK_IPC_CHANNEL, method, params);
}

const api: LinkIpcBridge = Object.fromEntries(CONTROL_METHOD_NAMES.map((m) => [m, bridge(m)]));

const events = {
  subscribe(listener: (event: ControlEvent) => void): () => void {
    const handler = (_e: Electron.IpcRendererEvent, payload: unknown): void => {
      const parsed = ControlEventSchema.safeParse(payload);
      if (parsed.success) listener(parsed.data);
    };
    ipcRenderer.on(LINK_EVENT_CHANNEL, handler);
    return () => void ipcRenderer.off(LINK_EVENT_CHANNEL, handler);
  },
  onNavigate(listener: (view: NavigableView) => void): () => void {
    const handler = (_e: Electron.IpcRendererEvent, view: unknown): void => {
      if (typeof view === "string" && (NAVIGABLE_VIEWS as readonly string[]).includes(view))
        listener(view as NavigableView);
    };
    ipcRenderer.on(LINK_NAVIGATE_CHANNEL, handler);
    return () => void ipcRenderer.off(LINK_NAVIGATE_CHANNEL, handler);
  },
};

contextBridge.exposeInMainWorld("piperLink", api);
contextBridge.exposeInMainWorld("piperLinkEvents", events);

/**
 * The preload bridge (sandboxed, context-isolated): exposes `window.piperLink`, one typed function
 * per LinkApi method. The renderer never sees ipcRenderer; main validates every call again.
 */
import { contextBridge, ipcRenderer } from "electron";
import { CONTROL_METHOD_NAMES, type ControlMethod, type LinkApi } from "../shared/control.js";
import { LINK_IPC_CHANNEL } from "../shared/ipc.js";

function bridge(method: ControlMethod) {
  return (params: unknown): Promise<unknown> => ipcRenderer.invoke(LINK_IPC_CHANNEL, method, params);
}

const api = Object.fromEntries(CONTROL_METHOD_NAMES.map((m) => [m, bridge(m)])) as unknown as LinkApi;
contextBridge.exposeInMainWorld("piperLink", api);

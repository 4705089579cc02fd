/**
 * The Electron shell: lifecycle, tray, window, IPC wiring. Thin by design: it starts the same Link
 * core the headless daemon runs and forwards the window's LinkApi calls to it. Hardening follows
 * DESIGN.md section 7: sandboxed, context-isolated renderer; no navigation or new windows; every
 * IPC call checked for its sender frame and validated by the shared schemas.
 */
import path from "node:path";
import { app, BrowserWindow, ipcMain, Menu, nativeImage, session, Tray, type IpcMainInvokeEvent } from "electron";
import { ControlMethods, CONTROL_METHOD_NAMES, type ControlMethod } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { LINK_IPC_CHANNEL } from "../../shared/ipc.js";
import { startDaemon, type RunningDaemon } from "../core/daemon.js";

const RENDERER_DEV_URL = process.env["ELECTRON_RENDERER_URL"];
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

let window: BrowserWindow | null = null;
let tray: Tray | null = null;
let daemon: RunningDaemon | null = null;
let quitting = false;

function isOwnFrame(event: IpcMainInvokeEvent): boolean {
  const url = event.senderFrame?.url ?? "";
  if (RENDERER_DEV_URL !== undefined && url.startsWith(RENDERER_DEV_URL)) return true;
  return url.startsWith("file://") && url.includes(`${path.sep}renderer${path.sep}`.replaceAll("\\", "/"));
}

function isControlMethod(value: unknown): value is ControlMethod {
  return typeof value === "string" && (CONTROL_METHOD_NAMES as string[]).includes(value);
}

function showWindow(): void {
  if (window === null) {
    window = new BrowserWindow({
      width: 960,
      height: 680,
      show: false,
      title: "Piper Link",
      webPreferences: {
        preload: path.join(import.meta.dirname, "../preload/index.cjs"),
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        webSecurity: true,
      },
    });
    window.on("close", (e) => {
      if (!quitting) {
        e.preventDefault();
        window?.hide();
      }
    });
    window.once("ready-to-show", () => window?.show());
    if (RENDERER_DEV_URL !== undefined) void window.loadURL(RENDERER_DEV_URL);
    else void window.loadFile(path.join(import.meta.dirname, "../renderer/index.html"));
  }
  window.show();
  window.focus();
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on("second-instance", showWindow);
  app.on("web-contents-created", (_e, contents) => {
    contents.on("will-navigate", (e) => e.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: "deny" }));
  });
  await app.whenReady();
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, "Content-Security-Policy": [CSP] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));

  daemon = await startDaemon({ profile: process.env["PIPER_LINK_PROFILE"] ?? "default", port: 31477 });
  const link = daemon.link;
  ipcMain.handle(LINK_IPC_CHANNEL, async (event, method: unknown, params: unknown) => {
    if (!isOwnFrame(event)) throw new Error("IPC refused: unknown sender frame");
    if (!isControlMethod(method)) throw new Error("IPC refused: unknown method");
    const parsed = ControlMethods[method].params.safeParse(params ?? {});
    if (!parsed.success) throw new LinkError("bad_request", `Invalid params for ${method}`);
    const fn = link.api[method] as (p: unknown) => Promise<unknown>;
    return ControlMethods[method].result.parse(await fn(parsed.data));
  });

  tray = new Tray(nativeImage.createFromPath(path.join(import.meta.dirname, "../../assets/tray.png")));
  tray.setToolTip("Piper Link");
  const refreshTray = (): void => {
    const status = link.status();
    tray?.setContextMenu(
      Menu.buildFromTemplate([
        { label: "Open Piper Link", click: showWindow },
        { label: status.state === "ready" ? `Signed in (${status.instanceIdRedacted ?? ""})` : "Not signed in", enabled: false },
        { label: `${status.agents.length} agent(s) connected`, enabled: false },
        { type: "separator" },
        { label: "Quit Piper Link", click: () => app.quit() },
      ]),
    );
  };
  refreshTray();
  setInterval(refreshTray, 5000).unref();
  tray.on("click", showWindow);
  showWindow();

  app.on("before-quit", (e) => {
    if (quitting || daemon === null) return;
    quitting = true;
    e.preventDefault();
    void daemon.stop("quit").then(() => app.quit());
  });
  // A tray app keeps running with no window open.
  app.on("window-all-closed", () => undefined);
}

void main();

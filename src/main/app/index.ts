/**
 * The Electron shell: lifecycle, tray, window, IPC wiring, notifications, start at login. Thin by
 * design: it starts the same Link core the headless daemon runs (its embedded authority in a utility
 * process), forwards the window's LinkApi calls and the core's events, and reflects state in the
 * tray. Hardening follows DESIGN.md section 7: sandboxed, context-isolated renderer; no navigation
 * or new windows; the system browser opened only for the authority's sign-in pages; every IPC call
 * checked for its sender frame and validated by the shared schemas; single-instance lock.
 */
import path from "node:path";
import { app, BrowserWindow, dialog, ipcMain, Menu, nativeImage, Notification, session, shell, Tray, type IpcMainInvokeEvent } from "electron";
import type { RequestView } from "../../shared/authority.js";
import { dispatchControl, type ControlEvent, type ControlOutcome, type LinkSettings } from "../../shared/control.js";
import { LINK_EVENT_CHANNEL, LINK_IPC_CHANNEL, LINK_NAVIGATE_CHANNEL, type NavigableView } from "../../shared/ipc.js";
import { setXdgAutostart } from "../core/runtime/autostart.js";
import { startDaemon, type RunningDaemon } from "../core/daemon.js";
import { utilityLauncher } from "./authority-launcher.js";
import { isAuthoritySignInUrl, isOwnFrameUrl } from "./shell-policy.js";

const RENDERER_DEV_URL = process.env["ELECTRON_RENDERER_URL"];
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

type TrayState = "normal" | "pending" | "signed-out";

let window: BrowserWindow | null = null;
let tray: Tray | null = null;
let daemon: RunningDaemon | null = null;
let quitting = false;

function isOwnFrame(event: IpcMainInvokeEvent): boolean {
  return isOwnFrameUrl(event.senderFrame?.url, RENDERER_DEV_URL);
}

function asset(...parts: string[]): string {
  return path.join(app.getAppPath(), "assets", ...parts);
}

function showWindow(view?: NavigableView): void {
  if (window === null) {
    window = new BrowserWindow({
      width: 1040,
      height: 720,
      minWidth: 720,
      minHeight: 480,
      show: false,
      title: "Piper Link",
      icon: asset("icons", "512x512.png"),
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
    window.on("closed", () => (window = null));
    window.once("ready-to-show", () => window?.show());
    if (RENDERER_DEV_URL !== undefined) void window.loadURL(RENDERER_DEV_URL);
    else void window.loadFile(path.join(import.meta.dirname, "../renderer/index.html"));
  }
  window.show();
  window.focus();
  if (view !== undefined) {
    const w = window;
    if (w.webContents.isLoading()) w.webContents.once("did-finish-load", () => w.webContents.send(LINK_NAVIGATE_CHANNEL, view));
    else w.webContents.send(LINK_NAVIGATE_CHANNEL, view);
  }
}

/** Only the authority's own sign-in pages may open in the system browser (DESIGN.md section 7). */
function mayOpenExternally(target: string): boolean {
  return isAuthoritySignInUrl(target, daemon?.link.status().authority?.url ?? null);
}

async function applyStartAtLogin(settings: LinkSettings): Promise<void> {
  if (process.platform === "linux") {
    // An AppImage is started through its own file, not the extracted binary.
    const exec = process.env["APPIMAGE"] ?? process.execPath;
    await setXdgAutostart(settings.startAtLogin, app.isPackaged ? [exec, "--hidden"] : [exec, app.getAppPath(), "--hidden"]);
  } else {
    app.setLoginItemSettings({ openAtLogin: settings.startAtLogin, args: ["--hidden"] });
  }
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on("second-instance", () => showWindow());
  app.on("web-contents-created", (_e, contents) => {
    contents.on("will-navigate", (e) => e.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      if (mayOpenExternally(url)) void shell.openExternal(url);
      return { action: "deny" };
    });
  });
  await app.whenReady();
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, "Content-Security-Policy": [CSP] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));

  daemon = await startDaemon({
    profile: process.env["PIPER_LINK_PROFILE"] ?? "default",
    port: 31477,
    authority: { kind: "embedded", launcher: utilityLauncher(app.getAppPath()) },
    uiDir: null,
  });
  const link = daemon.link;
  // Answers a ControlOutcome value, never a thrown error, so the window keeps each error's code.
  ipcMain.handle(LINK_IPC_CHANNEL, async (event, method: unknown, params: unknown): Promise<ControlOutcome> => {
    if (!isOwnFrame(event)) return { ok: false, error: { code: "forbidden_origin", message: "IPC refused: unknown sender frame." } };
    return dispatchControl(link.api, method, params, (m, err) => process.stderr.write(`Piper Link: ${m} failed: ${err instanceof Error ? err.message : String(err)}\n`));
  });

  const icons: Record<TrayState, Electron.NativeImage> = {
    normal: trayImage("normal"),
    pending: trayImage("pending"),
    "signed-out": trayImage("signed-out"),
  };
  tray = new Tray(icons.normal);
  tray.setToolTip("Piper Link");
  tray.on("click", () => showWindow());
  let pending: RequestView[] = [];
  const refreshTray = (): void => {
    const status = link.status();
    const state: TrayState = status.state !== "ready" ? "signed-out" : pending.length > 0 ? "pending" : "normal";
    tray?.setImage(icons[state]);
    if (process.platform === "darwin") tray?.setTitle(pending.length > 0 ? String(pending.length) : "");
    tray?.setToolTip(state === "signed-out" ? "Piper Link — not signed in" : pending.length > 0 ? `Piper Link — ${pending.length} pending request(s)` : "Piper Link");
    tray?.setContextMenu(
      Menu.buildFromTemplate([
        { label: "Open Piper Link", click: () => showWindow() },
        { label: pending.length === 0 ? "No pending requests" : `${pending.length} pending request(s)…`, enabled: pending.length > 0, click: () => showWindow("requests") },
        { type: "separator" },
        { label: status.state === "ready" ? `Signed in — machine ${status.instanceIdRedacted ?? ""}` : "Not signed in", enabled: false },
        { label: `${status.agents.length} agent(s) connected`, enabled: false },
        { type: "separator" },
        { label: "Sign out", enabled: status.state === "ready", click: () => void link.api.logout({}).catch(() => undefined) },
        { label: "Quit Piper Link", click: () => app.quit() },
      ]),
    );
  };
  const refreshPending = async (): Promise<void> => {
    pending = link.status().state === "ready" ? await link.api.listRequests({ status: "pending" }).catch(() => pending) : [];
    refreshTray();
  };

  let settings = await link.api.getSettings({});
  await applyStartAtLogin(settings).catch(() => undefined);
  /** Called after `pending` was refreshed, so the new request is found there without asking again. */
  const notify = (requestId: string): void => {
    if (!settings.notifications || !Notification.isSupported()) return;
    const request = pending.find((r) => r.id === requestId);
    if (request === undefined) return;
    const who = request.agentName ?? request.agentClientId;
    const proc = request.process === null ? "" : ` (${path.basename(request.process.executable ?? "?")}, pid ${request.process.pid})`;
    const n = new Notification({ title: `${who} wants ${request.variable.toUpperCase()}`, body: `${request.reason ?? "No reason given."}${proc}\nClick to approve or deny.` });
    n.on("click", () => showWindow("requests"));
    n.show();
  };

  link.subscribe((event: ControlEvent) => {
    window?.webContents.send(LINK_EVENT_CHANNEL, event);
    if (event.kind === "show") showWindow(event.view);
    else if (event.kind === "settings") {
      settings = event.settings;
      void applyStartAtLogin(settings).catch(() => undefined);
    } else if (event.kind === "authority" && event.event.type.startsWith("request.")) {
      const created = event.event.type === "request.created" ? event.event.id : null;
      void refreshPending().then(() => created !== null && notify(created));
    } else if (event.kind === "status") void refreshPending();
  });
  await refreshPending();
  if (!process.argv.includes("--hidden")) showWindow();

  app.on("before-quit", (e) => {
    if (quitting || daemon === null) return;
    quitting = true;
    e.preventDefault();
    void daemon.stop("quit").then(() => app.quit());
  });
  // A tray app keeps running with no window open.
  app.on("window-all-closed", () => undefined);
}

/** Tray images from assets/tray (macOS uses template images that follow the menu bar's colour). */
function trayImage(state: TrayState): Electron.NativeImage {
  const name = process.platform === "darwin" ? `tray-${state}Template.png` : `tray-${state}.png`;
  return nativeImage.createFromPath(asset("tray", name));
}

void main().catch((err: unknown) => {
  // Without a keychain or with the Link already running, say so and leave rather than sit in the tray broken.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`Piper Link could not start: ${message}\n`);
  dialog.showErrorBox("Piper Link could not start", message);
  app.exit(1);
});

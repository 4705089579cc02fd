/**
 * The Electron main process, kept thin: it passes the real `electron` module to the shell's modules
 * (electron-api.ts says which parts; the typecheck proves the real objects fit), takes the
 * single-instance lock, hardens every web page and the session (DESIGN.md section 7), starts the
 * same Link core the headless daemon runs (its embedded authority in a utility process), and hands
 * the Link to `startShell` (tray, window, IPC, notifications). Start at login is applied here, per
 * platform.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { app, BrowserWindow, dialog, ipcMain, Menu, Notification, session, shell, Tray } from "electron";
import type { LinkSettings } from "../../shared/control.js";
import { profileFromEnv } from "../../shared/profile.js";
import { setXdgAutostart } from "../core/runtime/autostart.js";
import { startDaemon, StoppedBeforeStart, type RunningDaemon } from "../core/daemon.js";
import { utilityLauncher } from "./authority-launcher.js";
import type { ElectronApi } from "./electron-api.js";
import { startShell } from "./shell.js";
import { signInPagesOrigin } from "./shell-policy.js";
import { hardenAllWebContents, hardenSession, type WindowPage } from "./window.js";

const electron: ElectronApi = { app, BrowserWindow, Tray, Menu, Notification, ipcMain, shell, session, dialog };

const RENDERER_DEV_URL = process.env["ELECTRON_RENDERER_URL"];
const rendererIndex = path.join(import.meta.dirname, "../renderer/index.html");
const page: WindowPage = RENDERER_DEV_URL !== undefined && RENDERER_DEV_URL !== "" ? { kind: "url", url: RENDERER_DEV_URL } : { kind: "file", path: rendererIndex };
const ownPageUrl = page.kind === "url" ? page.url : pathToFileURL(page.path).href;

let daemon: RunningDaemon | null = null;

async function applyStartAtLogin(settings: LinkSettings): Promise<void> {
  if (process.platform === "linux") {
    // An AppImage is started through its own file, not the extracted binary.
    const exec = process.env["APPIMAGE"] ?? process.execPath;
    await setXdgAutostart(settings.startAtLogin, app.isPackaged ? [exec, "--hidden"] : [exec, app.getAppPath(), "--hidden"]);
  } else {
    app.setLoginItemSettings({ openAtLogin: settings.startAtLogin, args: ["--hidden"] });
  }
}

function logFailure(what: string, err: unknown): void {
  process.stderr.write(`Piper Link: ${what} failed: ${err instanceof Error ? err.message : String(err)}\n`);
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  // Before any web contents exists, so none escapes the guards.
  hardenAllWebContents(electron, {
    ownPageUrl,
    // The embedded authority's pages are shown on the Link's own origin (issue 15 item 3).
    authorityUrl: () => {
      const status = daemon?.link.status();
      return status === undefined ? null : signInPagesOrigin(status);
    },
    openExternal: (url) => shell.openExternal(url),
  });
  await app.whenReady();
  hardenSession(session.defaultSession);

  const running = await startDaemon({
    profile: profileFromEnv(process.env),
    port: 31477,
    authority: { kind: "embedded", launcher: utilityLauncher(app.getAppPath()) },
    uiDir: null,
  });
  daemon = running;
  const shellUi = await startShell(electron, {
    link: running.link,
    ownPageUrl,
    page,
    preloadPath: path.join(import.meta.dirname, "../preload/index.cjs"),
    assetDir: path.join(app.getAppPath(), "assets"),
    platform: process.platform,
    stopLink: () => running.stop("quit"),
    onSettings: (settings) => void applyStartAtLogin(settings).catch((err: unknown) => logFailure("start at login", err)),
    onUnexpected: logFailure,
  });
  if (!process.argv.includes("--hidden")) shellUi.showWindow();
}

void main().catch((err: unknown) => {
  // Stopped by a signal while starting (e.g. on a keychain that does not answer): a stop, not a failure.
  if (err instanceof StoppedBeforeStart) {
    process.stderr.write(`${err.message}\n`);
    app.exit(0);
    return;
  }
  // Without a keychain or with the Link already running, say so and leave rather than sit in the tray broken.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`Piper Link could not start: ${message}\n`);
  dialog.showErrorBox("Piper Link could not start", message);
  app.exit(1);
});

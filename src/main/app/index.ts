/**
 * The Electron main process, kept to one call: it passes the real `electron` module (electron-api.ts
 * says which parts; the typecheck proves the real objects fit) and this process's facts to
 * `runDesktopApp` (desktop-app.ts), where the hardening and wiring live and are tested against a
 * double. The embedded authority runs in a utility process (authority-launcher.ts).
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, net, Notification, protocol, session, shell, Tray } from "electron";
import { utilityLauncher } from "./authority-launcher.js";
import { runDesktopApp } from "./desktop-app.js";
import type { ElectronApi } from "./electron-api.js";

const electron: ElectronApi = {
  app,
  BrowserWindow,
  Tray,
  Menu,
  Notification,
  ipcMain,
  shell,
  session,
  dialog,
  protocol,
  net,
};

void runDesktopApp(electron, {
  argv: process.argv,
  env: process.env,
  execArgv: process.execArgv,
  platform: process.platform,
  mainDir: import.meta.dirname,
  authorityLauncher: utilityLauncher,
  execPath: process.execPath,
  report: (line) => void process.stderr.write(`${line}\n`),
});

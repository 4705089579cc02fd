/**
 * The parts of Electron the shell uses, as small structural interfaces. The shell's modules (tray,
 * notifications, IPC, window, shell) take an `ElectronApi` instead of importing "electron", so their
 * logic runs in tests against a double where no Electron binary can be downloaded, while index.ts
 * passes the real module: every interface here is written so that the real objects satisfy it
 * without a cast (index.ts assigns them to `ElectronApi`, and the typecheck proves it against
 * electron.d.ts). Only types are imported from "electron", so loading these modules needs no binary.
 *
 * Images are passed as file paths (Tray, BrowserWindow icon and Notification all accept a path),
 * which keeps `nativeImage` out of the interface.
 */
import type { BrowserWindowConstructorOptions } from "electron";

/** An Electron event whose default action can be cancelled (`Electron.Event` satisfies it). */
export interface PreventableEvent {
  preventDefault(): void;
}

/** What `setWindowOpenHandler` answers; the shell only ever denies (DESIGN.md section 7). */
export interface DenyWindowOpen {
  action: "deny";
}

/** The parts of `WebContents` the shell uses: navigation guards and pushing messages to the page. */
export interface ShellWebContents {
  isLoading(): boolean;
  send(channel: string, ...args: unknown[]): void;
  once(event: "did-finish-load", listener: () => void): unknown;
  on(event: "will-navigate", listener: (event: PreventableEvent, url: string) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => DenyWindowOpen): void;
}

/** The parts of a `BrowserWindow` the shell uses. */
export interface ShellWindow {
  readonly webContents: ShellWebContents;
  on(event: "close", listener: (event: PreventableEvent) => void): unknown;
  on(event: "closed", listener: () => void): unknown;
  once(event: "ready-to-show", listener: () => void): unknown;
  loadURL(url: string): Promise<void>;
  show(): void;
  hide(): void;
  focus(): void;
}

/** One tray menu entry; `click` takes no arguments (Electron's extra arguments are ignored). */
export interface ShellMenuItem {
  label?: string;
  type?: "normal" | "separator";
  enabled?: boolean;
  click?: () => void;
}

/**
 * A built menu (`Electron.Menu` satisfies it); the shell only hands it back to the tray. The tray
 * takes `ShellMenu | null` like Electron's own, so the real `Tray.setContextMenu(Menu | null)`
 * relates to it (method parameters are compared both ways).
 */
export interface ShellMenu {
  readonly items: readonly unknown[];
}

/** The parts of a `Tray` the shell uses; images are file paths. */
export interface ShellTray {
  setImage(image: string): void;
  setTitle(title: string): void;
  setToolTip(toolTip: string): void;
  setContextMenu(menu: ShellMenu | null): void;
  on(event: "click", listener: () => void): unknown;
  destroy(): void;
}

/** The parts of a `Notification` the shell uses. */
export interface ShellNotification {
  on(event: "click", listener: () => void): unknown;
  show(): void;
}

/** The sender of an `ipcMain.handle` call; `senderFrame` is null once the frame is gone. */
export interface ShellInvokeEvent {
  readonly senderFrame: { readonly url: string } | null;
}

/** The parts of `app` the shell uses. */
export interface ShellApp {
  readonly isPackaged: boolean;
  /** Chromium's parsed command line: the switches the app was started with. */
  readonly commandLine: { hasSwitch(name: string): boolean; getSwitchValue(name: string): string };
  getAppPath(): string;
  requestSingleInstanceLock(): boolean;
  whenReady(): Promise<void>;
  quit(): void;
  exit(exitCode?: number): void;
  setLoginItemSettings(settings: { openAtLogin: boolean; args: string[] }): void;
  on(event: "second-instance" | "window-all-closed", listener: () => void): unknown;
  on(event: "web-contents-created", listener: (event: PreventableEvent, contents: ShellWebContents) => void): unknown;
  on(event: "before-quit", listener: (event: PreventableEvent) => void): unknown;
}

/** The parts of `session.defaultSession` the shell uses: the CSP header and the permission policy. */
export interface ShellSession {
  webRequest: {
    onHeadersReceived(
      listener: (
        details: { responseHeaders?: Record<string, string[]> },
        callback: (response: { responseHeaders: Record<string, string[]> }) => void,
      ) => void,
    ): void;
  };
  setPermissionRequestHandler(
    handler: (webContents: unknown, permission: string, callback: (granted: boolean) => void) => void,
  ): void;
  /** Answers the synchronous checks (navigator.permissions.query, notifications, …). */
  setPermissionCheckHandler(
    handler: (webContents: unknown, permission: string, requestingOrigin: string, details: unknown) => boolean,
  ): void;
  /** Answers requests for USB, HID and serial devices. */
  setDevicePermissionHandler(handler: (details: unknown) => boolean): void;
}

/** The one privilege set the window's scheme asks for (app-protocol.ts). */
export interface ShellSchemePrivileges {
  standard: boolean;
  secure: boolean;
  supportFetchAPI: boolean;
}

/** The parts of `protocol` the shell uses: the window's own scheme (app-protocol.ts). */
export interface ShellProtocol {
  registerSchemesAsPrivileged(schemes: Array<{ scheme: string; privileges: ShellSchemePrivileges }>): void;
  handle(scheme: string, handler: (request: Request) => Response | Promise<Response>): void;
}

/** Everything the shell needs from Electron; index.ts passes the real module's objects. */
export interface ElectronApi {
  app: ShellApp;
  BrowserWindow: new (options: BrowserWindowConstructorOptions) => ShellWindow;
  Tray: new (image: string) => ShellTray;
  Menu: { buildFromTemplate(template: ShellMenuItem[]): ShellMenu };
  Notification: { new (options: { title: string; body: string }): ShellNotification; isSupported(): boolean };
  ipcMain: {
    handle(channel: string, listener: (event: ShellInvokeEvent, ...args: unknown[]) => Promise<unknown>): void;
    removeHandler(channel: string): void;
  };
  shell: { openExternal(url: string): Promise<void> };
  session: { defaultSession: ShellSession };
  dialog: { showErrorBox(title: string, content: string): void };
  protocol: ShellProtocol;
  /** Electron's fetch, which reads file:// URLs inside app.asar. */
  net: { fetch(url: string): Promise<Response> };
}

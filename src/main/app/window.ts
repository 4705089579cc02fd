/**
 * The window and the hardening of every web page the app shows (DESIGN.md section 7): the window's
 * options (context isolation, sandbox, no Node integration, web security), navigation blocked except
 * to the window's own page, new windows always denied (an allowed sign-in page opens in the system
 * browser instead), a strict CSP on every response, and every permission request refused. The window
 * hides on close unless the app is quitting: a tray app keeps running without it.
 */
import type { BrowserWindowConstructorOptions } from "electron";
import { LINK_NAVIGATE_CHANNEL, type NavigableView } from "../../shared/ipc.js";
import type { DenyWindowOpen, ElectronApi, ShellSession, ShellWebContents, ShellWindow } from "./electron-api.js";
import { isAuthoritySignInUrl, isOwnPageUrl } from "./shell-policy.js";

/** The Content-Security-Policy of every response the app's pages load. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The window's options; the four `webPreferences` flags are the hardening that must never change.
 * `devTools` is true only in a developer's (unpackaged) build: in a packaged app no DevTools can
 * open on the page where the PIN is typed.
 */
export function windowOptions(
  preloadPath: string,
  iconPath: string,
  devTools: boolean,
): BrowserWindowConstructorOptions {
  return {
    width: 1040,
    height: 720,
    minWidth: 720,
    minHeight: 480,
    show: false,
    title: "Piper Link",
    icon: iconPath,
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      devTools,
    },
  };
}

export interface ContentsPolicy {
  /** The window's own page: the one place navigation may go. */
  ownPageUrl: string;
  /** The authority's URL now (it can change when the embedded one restarts), or null. */
  authorityUrl(): string | null;
  openExternal(url: string): Promise<void>;
}

/**
 * Guards one web contents: `will-navigate` is prevented unless it goes to the window's own page;
 * window.open and target=_blank are always denied, and an authority sign-in page
 * (`isAuthoritySignInUrl`) is opened in the system browser instead.
 */
export function hardenWebContents(contents: ShellWebContents, policy: ContentsPolicy): void {
  contents.on("will-navigate", (event, url) => {
    if (!isOwnPageUrl(url, policy.ownPageUrl)) event.preventDefault();
  });
  contents.setWindowOpenHandler(({ url }): DenyWindowOpen => {
    if (isAuthoritySignInUrl(url, policy.authorityUrl())) void policy.openExternal(url).catch(() => undefined);
    return { action: "deny" };
  });
}

/** Guards every web contents the app will create; call before the first window (at start). */
export function hardenAllWebContents(electron: Pick<ElectronApi, "app">, policy: ContentsPolicy): void {
  electron.app.on("web-contents-created", (_event, contents) => hardenWebContents(contents, policy));
}

/**
 * Sets the CSP header on every response and refuses every permission: requests (camera,
 * notifications, …), checks (answered without asking, e.g. `navigator.permissions.query`) and
 * devices (USB, HID, serial). The window needs none of them.
 */
export function hardenSession(session: ShellSession): void {
  session.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, "Content-Security-Policy": [CSP] } });
  });
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
}

/** Where the window's page comes from: the dev server's URL, or the app's own scheme (app-protocol.ts). */
export interface WindowPage {
  url: string;
}

export interface WindowControllerOptions {
  page: WindowPage;
  preloadPath: string;
  iconPath: string;
  /** Whether DevTools may open (an unpackaged build only). */
  devTools: boolean;
  /** True once the app is quitting: then closing the window really closes it. */
  isQuitting(): boolean;
}

/** The one window, created on first `show`. */
export interface WindowController {
  /** Creates the window if needed, shows and focuses it, and tells the page to open `view`. */
  show(view?: NavigableView): void;
  /** Sends a message to the page when the window exists (dropped otherwise). */
  send(channel: string, payload: unknown): void;
  /** The window, when it exists. */
  current(): ShellWindow | null;
}

export function createWindowController(
  electron: Pick<ElectronApi, "BrowserWindow">,
  options: WindowControllerOptions,
): WindowController {
  let window: ShellWindow | null = null;

  function create(): ShellWindow {
    const w = new electron.BrowserWindow(windowOptions(options.preloadPath, options.iconPath, options.devTools));
    w.on("close", (event) => {
      if (!options.isQuitting()) {
        event.preventDefault();
        w.hide();
      }
    });
    w.on("closed", () => {
      if (window === w) window = null;
    });
    w.once("ready-to-show", () => w.show());
    void w.loadURL(options.page.url).catch(() => undefined);
    return w;
  }

  return {
    show(view) {
      window ??= create();
      const w = window;
      w.show();
      w.focus();
      if (view === undefined) return;
      // A page still loading would miss the message: send it once the page is there.
      if (w.webContents.isLoading())
        w.webContents.once("did-finish-load", () => w.webContents.send(LINK_NAVIGATE_CHANNEL, view));
      else w.webContents.send(LINK_NAVIGATE_CHANNEL, view);
    },
    send(channel, payload) {
      window?.webContents.send(channel, payload);
    },
    current: () => window,
  };
}

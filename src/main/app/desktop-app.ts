/**
 * The desktop app's start, on an injected `ElectronApi` (index.ts passes the real module; the
 * shell's test a double, which is how this wiring is tested without an Electron binary). In order:
 * a packaged app refuses debugging switches and hardens its process (no debugger, SIGUSR1 caught,
 * not dumpable); it takes the single-instance lock; it guards every web contents before one exists
 * and hardens the session (DESIGN.md section 7); it starts the same Link core the headless daemon
 * runs (its embedded authority in a utility process) and hands it to `startShell` (tray, window,
 * IPC, notifications). Start at login is applied here, per platform.
 */
import path from "node:path";
import type { LinkSettings } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { profileFromEnv } from "../../shared/profile.js";
import { DEFAULT_LINK_PORT } from "../../shared/version.js";
import { hardenProcess } from "../../platform/harden.js";
import type { AuthorityLauncher } from "../core/authority/embedded-authority.js";
import { startDaemon, StoppedBeforeStart, type RunningDaemon } from "../core/daemon.js";
import { autostartFile, setXdgAutostart } from "../core/runtime/autostart.js";
import { readLinkEnv } from "../core/runtime/env.js";
import { APP_PAGE_URL, registerAppScheme, serveAppScheme } from "./app-protocol.js";
import type { ElectronApi } from "./electron-api.js";
import { startShell, type RunningShell } from "./shell.js";
import { debuggingSwitch, signInPagesOrigin } from "./shell-policy.js";
import { hardenAllWebContents, hardenSession, type WindowPage } from "./window.js";

/** The exit status of a refused start (a debugging switch or debugger), as the CLI's usage errors. */
export const REFUSED_EXIT_STATUS = 2;

export interface DesktopAppOptions {
  /** The process's argv and environment (`process.argv`, `process.env`): read here, once, for the whole app (core/runtime/env.ts). */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Node's own options of this process (`process.execArgv`). */
  execArgv: readonly string[];
  platform: NodeJS.Platform;
  /** The folder of the built main process (out/main): the renderer and preload are beside it. */
  mainDir: string;
  /** Starts the embedded authority (a utility process in the real app); absent: a Node child. */
  authorityLauncher?: (appPath: string) => AuthorityLauncher;
  /** The Link's preferred port; default 31477 (tests: 0). */
  port?: number;
  /** The executable that start at login runs (the AppImage, else the Electron binary). */
  execPath: string;
  /** Where failures are written (stderr). */
  report(line: string): void;
}

export interface DesktopApp {
  daemon: RunningDaemon;
  shell: RunningShell;
}

/**
 * The window's page: the dev server's URL (`ELECTRON_RENDERER_URL`) only in a developer's
 * (unpackaged) build; otherwise the built renderer through the app's own scheme
 * (`app://piper-link/index.html`, app-protocol.ts), so no environment variable can make another page
 * "the app's own page" for the IPC check, and no file:// page needs extra privileges.
 */
export function windowPage(isPackaged: boolean, env: NodeJS.ProcessEnv): { page: WindowPage; ownPageUrl: string } {
  const devUrl = isPackaged ? undefined : env["ELECTRON_RENDERER_URL"];
  if (devUrl !== undefined && devUrl !== "") return { page: { url: devUrl }, ownPageUrl: devUrl };
  return { page: { url: APP_PAGE_URL }, ownPageUrl: APP_PAGE_URL };
}

/**
 * Starts the desktop app. Resolves with the running Link and shell, or null when the app did not
 * start: another instance holds the lock (this one quits), a packaged app was started with a
 * debugging switch or debugger (it says so and exits with `REFUSED_EXIT_STATUS`), a stop signal
 * arrived during the start (exit 0), or the start failed (an error box, exit 1).
 */
export async function runDesktopApp(electron: ElectronApi, options: DesktopAppOptions): Promise<DesktopApp | null> {
  const { app, dialog } = electron;
  const refuse = (message: string): null => {
    options.report(`Piper Link will not start: ${message}`);
    dialog.showErrorBox("Piper Link will not start", message);
    app.exit(REFUSED_EXIT_STATUS);
    return null;
  };
  const fail = (err: unknown): null => {
    // Without a keychain or with the Link already running, say so and leave rather than sit in the tray broken.
    const message = err instanceof Error ? err.message : String(err);
    options.report(`Piper Link could not start: ${message}`);
    dialog.showErrorBox("Piper Link could not start", message);
    app.exit(1);
    return null;
  };
  if (app.isPackaged) {
    const found = debuggingSwitch(app.commandLine, options.argv);
    if (found !== null)
      return refuse(
        `it was started with ${found}, which would let another program drive or read its window. Start it without that switch.`,
      );
  }
  let hardening;
  try {
    hardening = await hardenProcess("shell", {
      allowDebugger: !app.isPackaged,
      execArgv: options.execArgv,
      env: options.env,
      platform: options.platform,
    });
  } catch (err) {
    return err instanceof LinkError ? refuse(err.message) : fail(err);
  }
  // Only before the app is ready does Electron accept a privileged scheme.
  registerAppScheme(electron.protocol);
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return null;
  }

  const { page, ownPageUrl } = windowPage(app.isPackaged, options.env);
  const linkEnv = readLinkEnv(options.env, options.platform);
  let daemon: RunningDaemon | null = null;
  // Before any web contents exists, so none escapes the guards.
  hardenAllWebContents(electron, {
    ownPageUrl,
    // The embedded authority's pages are shown on the Link's own origin.
    authorityUrl: () => {
      const status = daemon?.link.status();
      return status === undefined ? null : signInPagesOrigin(status);
    },
    openExternal: (url) => electron.shell.openExternal(url),
  });
  const logFailure = (what: string, err: unknown): void =>
    options.report(`Piper Link: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
  const applyStartAtLogin = async (settings: LinkSettings): Promise<void> => {
    if (options.platform === "linux") {
      // An AppImage is started through its own file, not the extracted binary.
      const exec = options.env["APPIMAGE"] ?? options.execPath;
      await setXdgAutostart(
        settings.startAtLogin,
        app.isPackaged ? [exec, "--hidden"] : [exec, app.getAppPath(), "--hidden"],
        autostartFile(linkEnv.configHome),
      );
    } else {
      app.setLoginItemSettings({ openAtLogin: settings.startAtLogin, args: ["--hidden"] });
    }
  };

  try {
    await app.whenReady();
    hardenSession(electron.session.defaultSession);
    serveAppScheme(electron, path.join(options.mainDir, "../renderer"));
    const launcher = options.authorityLauncher?.(app.getAppPath());
    const running = await startDaemon({
      profile: profileFromEnv(options.env),
      env: linkEnv,
      port: options.port ?? DEFAULT_LINK_PORT,
      authority: launcher === undefined ? { kind: "embedded" } : { kind: "embedded", launcher },
      uiDir: null,
      hardened: hardening,
      installRoot: app.getAppPath(),
    });
    daemon = running;
    const shell = await startShell(electron, {
      link: running.link,
      ownPageUrl,
      page,
      preloadPath: path.join(options.mainDir, "../preload/index.cjs"),
      assetDir: path.join(app.getAppPath(), "assets"),
      platform: options.platform,
      stopLink: () => running.stop("quit"),
      onSettings: (settings) =>
        void applyStartAtLogin(settings).catch((err: unknown) => logFailure("start at login", err)),
      onUnexpected: logFailure,
    });
    if (!options.argv.includes("--hidden")) shell.showWindow();
    return { daemon: running, shell };
  } catch (err) {
    // Stopped by a signal while starting (e.g. on a keychain that does not answer): a stop, not a failure.
    if (err instanceof StoppedBeforeStart) {
      options.report(err.message);
      app.exit(0);
      return null;
    }
    return fail(err);
  }
}

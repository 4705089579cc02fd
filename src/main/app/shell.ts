/**
 * The shell around a running Link core: the window's IPC, the tray, notifications and the app's
 * lifecycle events, all through an injected `ElectronApi` (index.ts passes the real module; tests a
 * double). It holds no business logic: it lists pending requests through the Link's API whenever the
 * Link says something changed, and redraws the tray and notifies from that list.
 */
import path from "node:path";
import type { RequestView } from "../../shared/authority.js";
import type { ControlEvent, LinkApi, LinkSettings, LinkStatus } from "../../shared/control.js";
import { LINK_EVENT_CHANNEL, type NavigableView } from "../../shared/ipc.js";
import type { ElectronApi } from "./electron-api.js";
import { registerLinkIpc } from "./ipc.js";
import { createRequestNotifier } from "./notifications.js";
import { createTray } from "./tray.js";
import { createWindowController, type WindowPage } from "./window.js";

/** The parts of the Link core (src/main/core/link.ts `Link`) the shell uses. */
export interface ShellLink {
  readonly api: LinkApi;
  status(): LinkStatus;
  subscribe(listener: (event: ControlEvent) => void): () => void;
}

export interface ShellOptions {
  link: ShellLink;
  /** The window's own page as a URL (see `isOwnPageUrl`), and how to load it. */
  ownPageUrl: string;
  page: WindowPage;
  preloadPath: string;
  /** The app's `assets` folder (window icon, tray images). */
  assetDir: string;
  platform: NodeJS.Platform;
  /** Stops the Link core; awaited before the app quits. */
  stopLink(): Promise<void>;
  /** Told of the settings at start and after each change (index.ts applies start-at-login). */
  onSettings?: (settings: LinkSettings) => void;
  /** Told about unexpected failures (for the log). */
  onUnexpected?: (what: string, err: unknown) => void;
}

export interface RunningShell {
  /**
   * Lists pending requests again and redraws the tray and notifies from the answer. Resolves once
   * this reload (or a later one that overtook it) has been applied.
   */
  refresh(): Promise<void>;
  showWindow(view?: NavigableView): void;
  /** The pending requests the tray shows now. */
  pending(): readonly RequestView[];
  /** Removes the IPC handler, the tray and the Link subscription (the app is quitting). */
  stop(): void;
}

/**
 * Wires the shell to a started Link: IPC handler, tray, notifications, the Link's events (forwarded
 * to the window), second-instance and quit handling. The first pending list is loaded before it
 * resolves, so requests already pending at start are shown in the tray but not notified.
 */
export async function startShell(electron: ElectronApi, options: ShellOptions): Promise<RunningShell> {
  const { link, platform } = options;
  const report = (what: string) => (err: unknown) => options.onUnexpected?.(what, err);
  let quitting = false;

  const window = createWindowController(electron, {
    page: options.page,
    preloadPath: options.preloadPath,
    iconPath: path.join(options.assetDir, "icons", "512x512.png"),
    devTools: !electron.app.isPackaged,
    isQuitting: () => quitting,
  });
  const showWindow = (view?: NavigableView): void => window.show(view);
  const removeIpc = registerLinkIpc(electron, {
    api: link.api,
    ownPageUrl: options.ownPageUrl,
    onUnexpected: (method, err) => report(method)(err),
  });
  const tray = createTray(electron, {
    assetDir: options.assetDir,
    platform,
    actions: {
      showWindow,
      lock: () => void link.api.lock({}).catch(report("lock")),
      signOut: () => void link.api.logout({}).catch(report("logout")),
      quit: () => electron.app.quit(),
    },
  });
  const notifier = createRequestNotifier(electron, () => showWindow("requests"));

  let settings = await link.api.getSettings({});
  options.onSettings?.(settings);
  let pending: RequestView[] = [];
  // Reloads can overlap (events come in bursts); only the newest answer is applied.
  let started = 0;
  let applied = 0;
  const refresh = async (): Promise<void> => {
    const seq = ++started;
    let list: RequestView[] | null = [];
    if (link.status().state === "ready") {
      list = await link.api.listRequests({ status: "pending" }).catch((err: unknown) => {
        // Keep showing the last known list while the authority is unreachable.
        report("listRequests")(err);
        return null;
      });
    }
    if (seq < applied) return;
    applied = seq;
    if (list !== null) {
      pending = list;
      notifier.update(pending, settings.notifications);
    }
    tray.update(link.status(), pending.length);
  };

  const unsubscribe = link.subscribe((event) => {
    window.send(LINK_EVENT_CHANNEL, event);
    if (event.kind === "show") showWindow(event.view);
    else if (event.kind === "settings") {
      settings = event.settings;
      options.onSettings?.(settings);
    } else if (event.kind === "status" || event.event.type.startsWith("request.")) void refresh();
  });
  await refresh();

  electron.app.on("second-instance", () => showWindow());
  electron.app.on("before-quit", (event) => {
    if (quitting) return;
    quitting = true;
    // Stop the core (agents told, discovery file removed) before the process goes away.
    event.preventDefault();
    void options
      .stopLink()
      .catch(report("stop"))
      .finally(() => electron.app.quit());
  });
  // A tray app keeps running with no window open.
  electron.app.on("window-all-closed", () => undefined);

  return {
    refresh,
    showWindow,
    pending: () => pending,
    stop() {
      unsubscribe();
      removeIpc();
      tray.destroy();
    },
  };
}

/**
 * The tray: its icon, tooltip, macOS title and menu follow the Link's status and the number of
 * pending requests. `trayState` and `trayMenu` are pure (status in, description out); `createTray`
 * applies them to an Electron `Tray` through the injected API.
 */
import path from "node:path";
import type { LinkStatus } from "../../shared/control.js";
import type { NavigableView } from "../../shared/ipc.js";
import type { ElectronApi, ShellMenuItem, ShellTray } from "./electron-api.js";

/** Which icon the tray shows: locked wins over signed out, which wins over pending requests, which win over normal. */
export type TrayState = "normal" | "pending" | "signed-out" | "locked";

/** The tray's state from the Link's status and the number of pending requests. */
export function trayState(status: Pick<LinkStatus, "state" | "vault">, pendingCount: number): TrayState {
  // A vault not yet created is as closed as a locked one: nothing is served until the window opens it.
  if (status.vault.state !== "unlocked") return "locked";
  if (status.state !== "ready") return "signed-out";
  return pendingCount > 0 ? "pending" : "normal";
}

/**
 * Who is signed in, in a few words (issue 15 item 7): "Name (email) on machine", parts the
 * authority has not named left out; null when it named nobody. Cut to keep a menu line short.
 */
export function signedInAs(status: Pick<LinkStatus, "account" | "machine">): string | null {
  const account = status.account ?? null;
  const machine = status.machine ?? null;
  if (account === null && machine === null) return null;
  const who = account === null ? "" : account.email === null ? account.name : `${account.name} (${account.email})`;
  const where = machine === null ? "" : `${who === "" ? "" : " "}on ${machine}`;
  const text = `${who}${where}`;
  return text.length > 100 ? `${text.slice(0, 99)}…` : text;
}

/** The tray's tooltip for a state; names who is signed in when the status says. */
export function trayToolTip(
  state: TrayState,
  pendingCount: number,
  status: Pick<LinkStatus, "account" | "machine"> = {},
): string {
  if (state === "locked") return "Piper Link — Locked";
  if (state === "signed-out") return "Piper Link — not signed in";
  const who = signedInAs(status);
  const base = who === null ? "Piper Link" : `Piper Link — ${who}`;
  return pendingCount > 0 ? `${base} — ${pendingCount} pending request(s)` : base;
}

/**
 * The tray icon file for a state, from `assets/tray` under `assetDir`. macOS gets template images
 * (the `Template` suffix makes Electron recolour them with the menu bar). Locked shows the
 * signed-out (inactive) icon: agents get nothing either way; the tooltip and menu say which.
 */
export function trayIconPath(assetDir: string, state: TrayState, platform: NodeJS.Platform): string {
  const icon = state === "locked" ? "signed-out" : state;
  return path.join(assetDir, "tray", platform === "darwin" ? `tray-${icon}Template.png` : `tray-${icon}.png`);
}

/** What the tray menu's entries do; supplied by the shell. */
export interface TrayActions {
  /** Opens the window, on `view` when given. */
  showWindow(view?: NavigableView): void;
  /** Locks the vault now (no proof needed). */
  lock(): void;
  signOut(): void;
  quit(): void;
}

/**
 * The tray menu for a status and pending count: open, pending requests, who is signed in, agents,
 * lock now, sign out, quit. Locked (or no vault yet): "Locked", "Unlock…" (the window asks for the
 * passphrase), quit.
 */
export function trayMenu(
  status: Pick<LinkStatus, "state" | "vault" | "instanceIdRedacted" | "agents" | "account" | "machine">,
  pendingCount: number,
  actions: TrayActions,
): ShellMenuItem[] {
  if (status.vault.state !== "unlocked") {
    return [
      { label: status.vault.state === "new" ? "Not set up yet" : "Locked", enabled: false },
      { label: status.vault.state === "new" ? "Set up…" : "Unlock…", click: () => actions.showWindow() },
      { type: "separator" },
      { label: "Quit Piper Link", click: () => actions.quit() },
    ];
  }
  const signedIn = status.state === "ready";
  const who = signedInAs(status);
  return [
    { label: "Open Piper Link", click: () => actions.showWindow() },
    {
      label: pendingCount === 0 ? "No pending requests" : `${pendingCount} pending request(s)…`,
      enabled: pendingCount > 0,
      click: () => actions.showWindow("requests"),
    },
    { type: "separator" },
    {
      label: !signedIn
        ? "Not signed in"
        : who !== null
          ? `Signed in as ${who}`
          : `Signed in — machine ${status.instanceIdRedacted ?? ""}`,
      enabled: false,
    },
    { label: `${status.agents.length} agent(s) connected`, enabled: false },
    { type: "separator" },
    { label: "Lock now", click: () => actions.lock() },
    { label: "Sign out", enabled: signedIn, click: () => actions.signOut() },
    { label: "Quit Piper Link", click: () => actions.quit() },
  ];
}

export interface TrayOptions {
  /** The app's `assets` folder (holds `tray/`). */
  assetDir: string;
  platform: NodeJS.Platform;
  actions: TrayActions;
}

/** The tray once created: `update` redraws it; `destroy` removes it. */
export interface ShellTrayView {
  update(status: LinkStatus, pendingCount: number): void;
  destroy(): void;
}

/** Creates the tray (normal icon until the first `update`); a click on it opens the window. */
export function createTray(electron: Pick<ElectronApi, "Tray" | "Menu">, options: TrayOptions): ShellTrayView {
  const { assetDir, platform, actions } = options;
  const tray: ShellTray = new electron.Tray(trayIconPath(assetDir, "normal", platform));
  tray.setToolTip("Piper Link");
  tray.on("click", () => actions.showWindow());
  return {
    update(status, pendingCount) {
      const state = trayState(status, pendingCount);
      tray.setImage(trayIconPath(assetDir, state, platform));
      // Only macOS shows a title beside the icon; elsewhere setTitle is a no-op worth skipping.
      if (platform === "darwin") tray.setTitle(pendingCount > 0 ? String(pendingCount) : "");
      tray.setToolTip(trayToolTip(state, pendingCount, status));
      tray.setContextMenu(electron.Menu.buildFromTemplate(trayMenu(status, pendingCount, actions)));
    },
    destroy: () => tray.destroy(),
  };
}

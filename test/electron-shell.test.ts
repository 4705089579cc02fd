// The Electron shell's logic (src/main/app: tray, notifications, IPC, window hardening, openExternal)
// driven against a double of the Electron API. This is the one place in the project where a double is
// right: the Electron binary cannot be downloaded on these machines, so the real module cannot load
// here (e2e/electron.test.ts runs the real app where a binary exists). Everything behind the double is
// real: a Link on port 0 with its embedded authority (child process, HTTPS, SQLite, real keyring),
// agents on real WebSockets, and requests created and decided through the authority.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { BrowserWindowConstructorOptions } from "electron";
import { LINK_IPC_CHANNEL, LINK_NAVIGATE_CHANNEL } from "../src/shared/ipc.js";
import { ControlOutcomeSchema, unwrapControlOutcome, type ControlOutcome } from "../src/shared/control.js";
import type {
  DenyWindowOpen,
  ElectronApi,
  PreventableEvent,
  ShellApp,
  ShellInvokeEvent,
  ShellMenu,
  ShellMenuItem,
  ShellNotification,
  ShellSchemePrivileges,
  ShellSession,
  ShellTray,
  ShellWebContents,
  ShellWindow,
} from "../src/main/app/electron-api.js";
import { startShell, type RunningShell } from "../src/main/app/shell.js";
import {
  runDesktopApp,
  REFUSED_EXIT_STATUS,
  type DesktopApp,
  type DesktopAppOptions,
} from "../src/main/app/desktop-app.js";
import { appFileFor, serveAppScheme } from "../src/main/app/app-protocol.js";
import { debuggingSwitch } from "../src/main/app/shell-policy.js";
import { hardenAllWebContents, hardenSession, CSP } from "../src/main/app/window.js";
import {
  connectAgent,
  pendingRequestId,
  startTestLink,
  TEST_PASSPHRASE,
  TEST_PROOF,
  uniqueProfile,
  type TestAgent,
  type TestLink,
} from "./helpers.js";

const OWN_PAGE = "app://piper-link/index.html";
const ASSETS = "/opt/piper/resources/app.asar/assets";

type Listener = (...args: unknown[]) => void;

/** A minimal event source for the doubles: `on`/`once` record listeners, `emit` calls them. */
class Events {
  private readonly listeners = new Map<string, Array<{ fn: Listener; once: boolean }>>();
  add(event: string, fn: Listener, once: boolean): void {
    const list = this.listeners.get(event) ?? [];
    list.push({ fn, once });
    this.listeners.set(event, list);
  }
  emit(event: string, ...args: unknown[]): void {
    const list = this.listeners.get(event) ?? [];
    this.listeners.set(
      event,
      list.filter((l) => !l.once),
    );
    for (const l of list) l.fn(...args);
  }
  count(event: string): number {
    return this.listeners.get(event)?.length ?? 0;
  }
}

/** An event whose `preventDefault` is recorded. */
class RecordedEvent implements PreventableEvent {
  prevented = false;
  preventDefault(): void {
    this.prevented = true;
  }
}

class FakeWebContents implements ShellWebContents {
  readonly events = new Events();
  readonly sent: Array<{ channel: string; args: unknown[] }> = [];
  loading = false;
  private openHandler: ((details: { url: string }) => DenyWindowOpen) | null = null;
  isLoading(): boolean {
    return this.loading;
  }
  send(channel: string, ...args: unknown[]): void {
    this.sent.push({ channel, args });
  }
  once(event: "did-finish-load", listener: () => void): this {
    this.events.add(event, listener, true);
    return this;
  }
  on(event: "will-navigate", listener: (event: PreventableEvent, url: string) => void): this {
    this.events.add(
      event,
      (e, url) => listener(e instanceof RecordedEvent ? e : new RecordedEvent(), String(url)),
      false,
    );
    return this;
  }
  setWindowOpenHandler(handler: (details: { url: string }) => DenyWindowOpen): void {
    this.openHandler = handler;
  }
  /** What a page's navigation would do: true when the shell prevented it. */
  navigate(url: string): boolean {
    const e = new RecordedEvent();
    this.events.emit("will-navigate", e, url);
    return e.prevented;
  }
  /** What a page's window.open would get. */
  openWindow(url: string): DenyWindowOpen | null {
    return this.openHandler?.({ url }) ?? null;
  }
}

class FakeMenu implements ShellMenu {
  constructor(readonly items: ShellMenuItem[]) {}
}

class FakeApp implements ShellApp {
  readonly commandLine: { hasSwitch(name: string): boolean; getSwitchValue(name: string): string };
  constructor(
    private readonly state: AppState,
    private readonly changes: EventEmitter,
    readonly isPackaged: boolean,
    switches: Readonly<Record<string, string>>,
  ) {
    this.commandLine = { hasSwitch: (name) => name in switches, getSwitchValue: (name) => switches[name] ?? "" };
  }
  getAppPath(): string {
    return "/opt/piper/resources/app.asar";
  }
  requestSingleInstanceLock(): boolean {
    this.state.lockRequests++;
    return true;
  }
  whenReady(): Promise<void> {
    this.state.ready = true;
    return Promise.resolve();
  }
  quit(): void {
    this.state.quits++;
    this.changes.emit("change");
  }
  exit(exitCode?: number): void {
    this.state.exits.push(exitCode ?? 0);
  }
  setLoginItemSettings(): void {}
  on(event: "second-instance" | "window-all-closed", listener: () => void): this;
  on(event: "web-contents-created", listener: (event: PreventableEvent, contents: ShellWebContents) => void): this;
  on(event: "before-quit", listener: (event: PreventableEvent) => void): this;
  on(event: string, listener: (event: PreventableEvent, contents: ShellWebContents) => void): this {
    this.state.events.add(
      event,
      (e, c) =>
        listener(
          e instanceof RecordedEvent ? e : new RecordedEvent(),
          c instanceof FakeWebContents ? c : new FakeWebContents(),
        ),
      false,
    );
    return this;
  }
}

/** What the double's app records: its listeners, quits, exit codes and single-instance lock requests. */
interface AppState {
  events: Events;
  quits: number;
  exits: number[];
  lockRequests: number;
  /** Whether `whenReady` was called: Electron accepts a privileged scheme only before. */
  ready: boolean;
}

/** What the shell did with `protocol`. */
interface SchemeState {
  privileged: Array<{ scheme: string; privileges: ShellSchemePrivileges }>;
  registeredBeforeReady: boolean | null;
  handlers: Map<string, (request: Request) => Response | Promise<Response>>;
}

/** The handlers the shell gave the double's session, to be called as Electron would. */
interface SessionHandlers {
  headers:
    | ((
        details: { responseHeaders?: Record<string, string[]> },
        callback: (response: { responseHeaders: Record<string, string[]> }) => void,
      ) => void)
    | null;
  request: ((webContents: unknown, permission: string, callback: (granted: boolean) => void) => void) | null;
  check: ((webContents: unknown, permission: string, requestingOrigin: string, details: unknown) => boolean) | null;
  device: ((details: unknown) => boolean) | null;
}

interface Double {
  api: ElectronApi;
  session: SessionHandlers;
  scheme: SchemeState;
  errorBoxes: Array<{ title: string; content: string }>;
  changes: EventEmitter;
  windows: FakeWindow[];
  trays: FakeTray[];
  notifications: FakeNotification[];
  ipc: Map<string, (event: ShellInvokeEvent, ...args: unknown[]) => Promise<unknown>>;
  opened: string[];
  app: AppState;
}

class FakeWindow implements ShellWindow {
  readonly events = new Events();
  readonly webContents = new FakeWebContents();
  loaded: string | null = null;
  visible = false;
  constructor(readonly options: BrowserWindowConstructorOptions) {}
  on(event: "close" | "closed", listener: (event: PreventableEvent) => void): this {
    this.events.add(event, (e) => listener(e instanceof RecordedEvent ? e : new RecordedEvent()), false);
    return this;
  }
  once(event: "ready-to-show", listener: () => void): this {
    this.events.add(event, listener, true);
    return this;
  }
  loadURL(url: string): Promise<void> {
    this.loaded = url;
    return Promise.resolve();
  }
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  focus(): void {}
  /** The person closes the window: true when the shell prevented it (hid it instead). */
  close(): boolean {
    const e = new RecordedEvent();
    this.events.emit("close", e);
    return e.prevented;
  }
}

class FakeTray implements ShellTray {
  image: string;
  title = "";
  toolTip = "";
  menu: FakeMenu | null = null;
  destroyed = false;
  readonly events = new Events();
  constructor(
    image: string,
    private readonly changes: EventEmitter,
  ) {
    this.image = image;
  }
  setImage(image: string): void {
    this.image = image;
  }
  setTitle(title: string): void {
    this.title = title;
  }
  setToolTip(toolTip: string): void {
    this.toolTip = toolTip;
  }
  setContextMenu(menu: ShellMenu | null): void {
    // The double's Menu builds FakeMenus; anything else would be a wiring error.
    this.menu = menu instanceof FakeMenu ? menu : null;
    this.changes.emit("change");
  }
  on(event: "click", listener: () => void): this {
    this.events.add(event, listener, false);
    return this;
  }
  destroy(): void {
    this.destroyed = true;
  }
  labels(): string[] {
    return (this.menu?.items ?? []).map((i) => i.label ?? `<${i.type ?? "normal"}>`);
  }
  item(label: RegExp): ShellMenuItem {
    const found = this.menu?.items.find((i) => label.test(i.label ?? ""));
    assert.ok(found, `no tray menu item ${String(label)} in ${JSON.stringify(this.labels())}`);
    return found;
  }
}

class FakeNotification implements ShellNotification {
  readonly events = new Events();
  shown = false;
  constructor(
    readonly options: { title: string; body: string },
    private readonly onShow: (n: FakeNotification) => void,
  ) {}
  on(event: "click", listener: () => void): this {
    this.events.add(event, listener, false);
    return this;
  }
  show(): void {
    this.shown = true;
    this.onShow(this);
  }
}

/**
 * A fresh double of the Electron API, recording what the shell does with it; `packaged` and the
 * Chromium `switches` (name → value) stand for how the app was built and started.
 */
function electronDouble(options: { packaged?: boolean; switches?: Record<string, string> } = {}): Double {
  const changes = new EventEmitter();
  const windows: FakeWindow[] = [];
  const trays: FakeTray[] = [];
  const notifications: FakeNotification[] = [];
  const ipc = new Map<string, (event: ShellInvokeEvent, ...args: unknown[]) => Promise<unknown>>();
  const opened: string[] = [];
  const appState: AppState = { events: new Events(), quits: 0, exits: [], lockRequests: 0, ready: false };
  const scheme: SchemeState = { privileged: [], registeredBeforeReady: null, handlers: new Map() };
  const handlers: SessionHandlers = { headers: null, request: null, check: null, device: null };
  const errorBoxes: Array<{ title: string; content: string }> = [];
  const session: ShellSession = {
    webRequest: { onHeadersReceived: (listener) => void (handlers.headers = listener) },
    setPermissionRequestHandler: (handler) => void (handlers.request = handler),
    setPermissionCheckHandler: (handler) => void (handlers.check = handler),
    setDevicePermissionHandler: (handler) => void (handlers.device = handler),
  };
  const api: ElectronApi = {
    app: new FakeApp(appState, changes, options.packaged ?? false, options.switches ?? {}),
    BrowserWindow: class extends FakeWindow {
      constructor(options: BrowserWindowConstructorOptions) {
        super(options);
        windows.push(this);
      }
    },
    Tray: class extends FakeTray {
      constructor(image: string) {
        super(image, changes);
        trays.push(this);
      }
    },
    Menu: { buildFromTemplate: (template) => new FakeMenu(template) },
    Notification: class extends FakeNotification {
      constructor(options: { title: string; body: string }) {
        super(options, (n) => {
          notifications.push(n);
          changes.emit("change");
        });
      }
      static isSupported(): boolean {
        return true;
      }
    },
    ipcMain: {
      handle: (channel, listener) => void ipc.set(channel, listener),
      removeHandler: (channel) => void ipc.delete(channel),
    },
    shell: {
      openExternal: (url) => {
        opened.push(url);
        return Promise.resolve();
      },
    },
    session: { defaultSession: session },
    dialog: { showErrorBox: (title, content) => void errorBoxes.push({ title, content }) },
    protocol: {
      registerSchemesAsPrivileged: (schemes) => {
        scheme.privileged.push(...schemes);
        scheme.registeredBeforeReady = !appState.ready;
      },
      handle: (name, handler) => void scheme.handlers.set(name, handler),
    },
    // Electron's net.fetch reads file:// URLs (inside app.asar too); the double reads them from disk.
    net: {
      fetch: async (url) => {
        const file = fileURLToPath(url);
        const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
        return new Response(await readFile(file), {
          headers: { "Content-Type": types[path.extname(file)] ?? "application/octet-stream" },
        });
      },
    },
  };
  return {
    api,
    session: handlers,
    scheme,
    errorBoxes,
    changes,
    windows,
    trays,
    notifications,
    ipc,
    opened,
    app: appState,
  };
}

/** Waits (on the double's change events, no polling) until `check` holds. */
function until(double: Double, check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      double.changes.off("change", onChange);
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const onChange = (): void => {
      if (!check()) return;
      clearTimeout(timer);
      double.changes.off("change", onChange);
      resolve();
    };
    double.changes.on("change", onChange);
  });
}

function tray(double: Double): FakeTray {
  const t = double.trays[0];
  assert.ok(t, "the shell created no tray");
  return t;
}

let t: TestLink;
const agents: TestAgent[] = [];
const shells: RunningShell[] = [];
let nextId = 1;

async function openShell(double: Double): Promise<RunningShell> {
  const shell = await startShell(double.api, {
    link: t.link,
    ownPageUrl: OWN_PAGE,
    page: { url: OWN_PAGE },
    preloadPath: "/opt/piper/resources/app.asar/out/preload/index.cjs",
    assetDir: ASSETS,
    platform: "linux",
    stopLink: () => Promise.resolve(),
  });
  shells.push(shell);
  return shell;
}

/** Signs in unless an earlier test did (tests may run alone with --test-name-pattern). */
async function signedIn(): Promise<void> {
  if (t.link.status().state !== "ready") await t.link.api.devSignIn({});
}

/** A real agent asks for `variable` without waiting: the authority creates a pending request. */
async function requestSecret(variable: string, clientId: string): Promise<string> {
  const agent = await connectAgent(t.url);
  agents.push(agent);
  assert.equal((await agent.hello(1, clientId)).type, "welcome");
  const id = ++nextId;
  agent.send({ type: "resolve", id, variable, reason: "shell test", wait: false });
  return pendingRequestId(await agent.next((m) => "id" in m && m.id === id, 15_000));
}

async function ipcCall(
  double: Double,
  frameUrl: string | null,
  method: unknown,
  params: unknown,
): Promise<ControlOutcome> {
  const handler = double.ipc.get(LINK_IPC_CHANNEL);
  assert.ok(handler, "no IPC handler registered");
  const event: ShellInvokeEvent = { senderFrame: frameUrl === null ? null : { url: frameUrl } };
  // What crosses IPC is structured-cloned.
  return ControlOutcomeSchema.parse(structuredClone(await handler(event, method, params)));
}

describe("Electron shell against a double of the Electron API, with a real Link and authority behind it", () => {
  before(async () => {
    t = await startTestLink({ authority: { kind: "embedded" } });
  });
  after(async () => {
    for (const s of shells) s.stop();
    for (const a of agents) a.close();
    await t.stop();
  });

  it("tray icon, tooltip and menu follow the status: signed out, normal, pending requests", async () => {
    const double = electronDouble();
    await openShell(double);
    const icon = tray(double);
    assert.equal(icon.image, `${ASSETS}/tray/tray-signed-out.png`);
    assert.equal(icon.toolTip, "Piper Link — not signed in");
    assert.equal(icon.item(/^Not signed in$/).enabled, false);
    assert.equal(icon.item(/^Sign out$/).enabled, false);

    await t.link.api.devSignIn({});
    await until(double, () => icon.image.endsWith("tray-normal.png"), "the normal icon after sign-in");
    // Who is signed in arrives from the authority after the sign-in itself (a second status
    // event), so the tooltip first reads "Piper Link" and then names the account and machine.
    await until(
      double,
      () => icon.toolTip === "Piper Link — Local user on This machine",
      "the tooltip naming who is signed in",
    );
    assert.equal(icon.item(/^Signed in/).label, "Signed in as Local user on This machine");
    assert.equal(icon.item(/^No pending requests$/).enabled, false);
    assert.equal(icon.item(/^Sign out$/).enabled, true);

    const requestId = await requestSecret("OPENAI_API_KEY", "agent_tray");
    await until(double, () => icon.image.endsWith("tray-pending.png"), "the pending icon");
    assert.equal(icon.toolTip, "Piper Link — Local user on This machine — 1 pending request(s)");
    const pendingItem = icon.item(/pending request/);
    assert.equal(pendingItem.label, "1 pending request(s)…");
    assert.equal(pendingItem.enabled, true);
    assert.match(icon.item(/agent\(s\) connected/).label ?? "", /^1 agent\(s\) connected$/);

    // The menu entry opens the window on the requests screen.
    pendingItem.click?.();
    const win = double.windows[0];
    assert.ok(win);
    assert.equal(win.visible, true);
    assert.deepEqual(
      win.webContents.sent.filter((s) => s.channel === LINK_NAVIGATE_CHANNEL).map((s) => s.args),
      [["requests"]],
    );

    await t.link.api.denyRequest({ requestId });
    await until(double, () => icon.image.endsWith("tray-normal.png"), "the normal icon after the request was decided");
    assert.equal(icon.item(/^No pending requests$/).enabled, false);
  });

  it("tray when locked: 'Lock now' locks the Link; the tray then says Locked and offers Unlock…, which opens the window; unlocking brings the menu back", async () => {
    await signedIn();
    const double = electronDouble();
    await openShell(double);
    const icon = tray(double);
    await until(double, () => icon.image.endsWith("tray-normal.png"), "the normal icon");
    icon.item(/^Lock now$/).click?.();
    await until(double, () => icon.toolTip === "Piper Link — Locked", "the Locked tooltip");
    assert.equal(t.link.status().vault.state, "locked");
    assert.equal(icon.image, `${ASSETS}/tray/tray-signed-out.png`);
    assert.deepEqual(icon.labels(), ["Locked", "Unlock…", "<separator>", "Quit Piper Link"]);
    assert.equal(icon.item(/^Locked$/).enabled, false);
    icon.item(/^Unlock…$/).click?.();
    assert.equal(double.windows[0]?.visible, true, "Unlock… opens the window, which asks for the passphrase");
    await t.link.api.unlock({ passphrase: TEST_PASSPHRASE });
    await until(double, () => icon.image.endsWith("tray-normal.png"), "the normal icon after unlocking");
    assert.equal(icon.item(/^Lock now$/).enabled, undefined);
    assert.equal(icon.item(/^Sign out$/).enabled, true);
  });

  it("notifies once per new request: not again on reload, not for requests pending before start, not when turned off", async () => {
    await signedIn();
    const before = await requestSecret("ALREADY_PENDING", "agent_early");
    const double = electronDouble();
    const shell = await openShell(double);
    assert.deepEqual(
      shell.pending().map((r) => r.id),
      [before],
    );
    assert.equal(double.notifications.length, 0, "a request pending before start is not notified");

    const first = await requestSecret("OPENAI_API_KEY", "agent_one");
    const second = await requestSecret("ANTHROPIC_API_KEY", "agent_two");
    await until(double, () => double.notifications.length >= 2, "two notifications");
    await shell.refresh();
    await shell.refresh();
    assert.equal(double.notifications.length, 2, "a reload does not notify again");
    assert.deepEqual(double.notifications.map((n) => n.options.title).sort(), [
      "Test Agent wants ANTHROPIC_API_KEY",
      "Test Agent wants OPENAI_API_KEY",
    ]);
    assert.match(
      double.notifications[0]?.options.body ?? "",
      /^shell test \(.+, pid \d+\)\nClick to approve or deny\.$/,
    );
    assert.deepEqual(new Set(shell.pending().map((r) => r.id)), new Set([before, first, second]));

    // A click opens the window on the requests screen.
    double.notifications[1]?.events.emit("click");
    assert.deepEqual(
      double.windows[0]?.webContents.sent.filter((s) => s.channel === LINK_NAVIGATE_CHANNEL).map((s) => s.args),
      [["requests"]],
    );

    // Turned off in Settings: a new request is listed in the tray but not notified.
    await t.link.api.updateSettings({ notifications: false, presence: TEST_PROOF });
    const third = await requestSecret("QUIET_KEY", "agent_three");
    await until(double, () => shell.pending().some((r) => r.id === third), "the third request in the tray");
    assert.equal(double.notifications.length, 2);
    await t.link.api.updateSettings({ notifications: true });
    for (const requestId of [before, first, second, third]) await t.link.api.denyRequest({ requestId });
  });

  it("IPC: refuses foreign frames and invalid params, answers the own frame with the real result", async () => {
    await signedIn();
    const double = electronDouble();
    await openShell(double);
    for (const frame of [
      null,
      "https://evil.example/",
      "app://piper-link/evil.html",
      "app://evil/index.html",
      "file:///opt/piper/resources/app.asar/out/renderer/index.html",
      "file:///tmp/renderer/index.html",
      "http://localhost:5173/",
    ]) {
      const refused = await ipcCall(double, frame, "status", {});
      assert.deepEqual(
        refused,
        { ok: false, error: { code: "forbidden_origin", message: "IPC refused: unknown sender frame." } },
        String(frame),
      );
    }
    // A refused frame runs nothing: not even a method that would change state.
    const before = t.link.status().state;
    assert.equal((await ipcCall(double, "https://evil.example/", "logout", {})).ok, false);
    assert.equal(t.link.status().state, before);

    const invalid = await ipcCall(double, OWN_PAGE, "setInstanceId", { instanceId: 42 });
    assert.equal(invalid.ok ? "ok" : invalid.error.code, "bad_request");
    const unknown = await ipcCall(double, OWN_PAGE, "dropTables", {});
    assert.equal(unknown.ok ? "ok" : unknown.error.code, "bad_request");

    const status = unwrapControlOutcome("status", await ipcCall(double, `${OWN_PAGE}#/requests`, "status", {}));
    assert.equal(status.port, t.port);
    assert.equal(status.state, "ready");
    const requestId = await requestSecret("IPC_KEY", "agent_ipc");
    const listed = unwrapControlOutcome(
      "listRequests",
      await ipcCall(double, OWN_PAGE, "listRequests", { status: "pending" }),
    );
    assert.ok(
      listed.some((r) => r.id === requestId),
      JSON.stringify(listed),
    );
    const denied = unwrapControlOutcome("denyRequest", await ipcCall(double, OWN_PAGE, "denyRequest", { requestId }));
    assert.equal(denied.status, "denied");
  });

  it("opens only the authority's sign-in pages externally, blocks navigation, hardens the window and the session", async () => {
    const authorityUrl = t.link.status().authority?.url ?? null;
    assert.ok(authorityUrl);
    const double = electronDouble();
    hardenAllWebContents(double.api, {
      ownPageUrl: OWN_PAGE,
      authorityUrl: () => authorityUrl,
      openExternal: (url) => double.api.shell.openExternal(url),
    });
    const shell = await openShell(double);
    shell.showWindow();
    const win = double.windows[0];
    assert.ok(win);
    // Electron fires web-contents-created for the window's contents; the double does it by hand.
    double.app.events.emit("web-contents-created", new RecordedEvent(), win.webContents);

    assert.deepEqual(win.options.webPreferences, {
      preload: "/opt/piper/resources/app.asar/out/preload/index.cjs",
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      devTools: true,
    });
    assert.equal(win.loaded, OWN_PAGE);

    assert.equal(win.webContents.navigate("https://example.com/"), true, "navigation to another site is prevented");
    assert.equal(
      win.webContents.navigate(`${authorityUrl}/device`),
      true,
      "even the sign-in page does not load in the window",
    );
    assert.equal(win.webContents.navigate("file:///etc/passwd"), true);
    assert.equal(win.webContents.navigate(`${OWN_PAGE}#/settings`), false, "the own page may load");

    const table: Array<[string, boolean]> = [
      [`${authorityUrl}/device`, true],
      [`${authorityUrl}/device?user_code=ABCD-EFGH`, true],
      [`${authorityUrl}/oauth/authorize?client_id=piper-link&state=x`, true],
      [`${authorityUrl}/device-x`, false],
      [`${authorityUrl}/oauth/token`, false],
      ["https://evil.example/device", false],
      [`http://127.0.0.1:${t.port}/device`, false],
    ];
    for (const [url, allowed] of table) {
      assert.deepEqual(win.webContents.openWindow(url), { action: "deny" }, `a new window is always denied: ${url}`);
      assert.equal(double.opened.includes(url), allowed, url);
    }
    assert.deepEqual(
      double.opened,
      table.filter(([, allowed]) => allowed).map(([url]) => url),
    );

    // Closing hides the tray app's window; quitting stops the Link first, then quits.
    assert.equal(win.close(), true);
    assert.equal(win.visible, false);
    const quit = new RecordedEvent();
    double.app.events.emit("before-quit", quit);
    assert.equal(quit.prevented, true);
    await until(double, () => double.app.quits === 1, "the app to quit after the Link stopped");
    assert.equal(win.close(), false, "once quitting, closing really closes");

    // Session: the CSP on every response, every permission refused.
    let headers: Record<string, string[]> = {};
    let granted: boolean | null = null;
    let checked: boolean | null = null;
    let device: boolean | null = null;
    hardenSession({
      webRequest: {
        onHeadersReceived: (listener) =>
          listener({ responseHeaders: { "X-Test": ["1"] } }, (r) => (headers = r.responseHeaders)),
      },
      setPermissionRequestHandler: (handler) => handler(null, "media", (g) => (granted = g)),
      setPermissionCheckHandler: (handler) => void (checked = handler(null, "notifications", OWN_PAGE, {})),
      setDevicePermissionHandler: (handler) => void (device = handler({ deviceType: "usb", origin: OWN_PAGE })),
    });
    assert.deepEqual(headers, { "X-Test": ["1"], "Content-Security-Policy": [CSP] });
    assert.equal(granted, false);
    assert.equal(checked, false);
    assert.equal(device, false);
  });
});

describe("the desktop app's start (desktop-app.ts, what index.ts runs) against the double", () => {
  const MAIN_DIR = "/opt/piper/resources/app.asar/out/main";
  const DEV_URL = "http://localhost:5173/";
  const started: Array<{ double: Double; app: DesktopApp }> = [];
  after(async () => {
    for (const { double, app } of started) {
      double.app.events.emit("before-quit", new RecordedEvent());
      await until(double, () => double.app.quits > 0, "the app to quit after the Link stopped");
      app.shell.stop();
    }
  });

  function options(over: Partial<DesktopAppOptions> = {}): DesktopAppOptions & { reported: string[] } {
    const reported: string[] = [];
    return {
      argv: ["/opt/piper/piper-link"],
      env: { ...process.env, PIPER_LINK_PROFILE: uniqueProfile(), ELECTRON_RENDERER_URL: DEV_URL },
      execArgv: [],
      platform: "linux",
      mainDir: MAIN_DIR,
      port: 0,
      execPath: "/opt/piper/piper-link",
      report: (line) => void reported.push(line),
      ...over,
      reported,
    };
  }

  it("a packaged app refuses remote debugging and debugger switches before anything starts (exit 2, an error box)", async () => {
    const cases: Array<{
      argv?: string[];
      switches?: Record<string, string>;
      execArgv?: string[];
      nodeOptions?: string;
      says: RegExp;
    }> = [
      { argv: ["--remote-debugging-port=9222"], says: /started with --remote-debugging-port=9222/ },
      { argv: ["-remote-debugging-port=9222"], says: /started with -remote-debugging-port=9222/ },
      { argv: ["--remote-debugging-pipe"], says: /started with --remote-debugging-pipe/ },
      { argv: ["--inspect=9229"], says: /started with --inspect=9229/ },
      { argv: ["--js-flags=--expose-gc --inspect"], says: /started with --js-flags=--expose-gc --inspect/ },
      { switches: { "remote-debugging-port": "0" }, says: /started with --remote-debugging-port/ },
      { switches: { "js-flags": "--inspect-brk" }, says: /started with --js-flags=--inspect-brk/ },
      { execArgv: ["--inspect-port=0"], says: /debugger enabled \(--inspect-port=0 on Node's command line\)/ },
      { nodeOptions: "--inspect", says: /debugger enabled \(--inspect in NODE_OPTIONS\)/ },
    ];
    for (const c of cases) {
      const double = electronDouble({ packaged: true, switches: c.switches ?? {} });
      const base = options();
      const o = {
        ...base,
        argv: [...base.argv, ...(c.argv ?? [])],
        execArgv: c.execArgv ?? [],
        env: { ...base.env, ...(c.nodeOptions === undefined ? {} : { NODE_OPTIONS: c.nodeOptions }) },
      };
      const result = await runDesktopApp(double.api, o);
      const what = JSON.stringify(c);
      assert.equal(result, null, what);
      assert.deepEqual(double.app.exits, [REFUSED_EXIT_STATUS], what);
      assert.equal(double.errorBoxes[0]?.title, "Piper Link will not start", what);
      assert.match(double.errorBoxes[0].content, c.says, what);
      assert.match(base.reported.join("\n"), c.says, what);
      assert.equal(double.app.lockRequests, 0, `nothing started: ${what}`);
      assert.equal(
        double.windows.length + double.trays.length + double.app.events.count("web-contents-created"),
        0,
        what,
      );
    }
  });

  it("a packaged app: its own files however ELECTRON_RENDERER_URL is set, no DevTools, every permission denied, every web contents guarded, SIGUSR1 caught", async () => {
    const double = electronDouble({ packaged: true });
    const o = options();
    const app = await runDesktopApp(double.api, o);
    assert.ok(app, o.reported.join("\n"));
    started.push({ double, app });
    assert.deepEqual(double.app.exits, []);
    assert.ok(process.listeners("SIGUSR1").length > 0, "the process catches SIGUSR1");

    const win = double.windows[0];
    assert.ok(win, "the window is shown (no --hidden)");
    assert.equal(win.loaded, OWN_PAGE, "the dev server's URL is ignored when packaged");
    // The page comes through the app's own scheme, declared before the app was ready.
    assert.deepEqual(double.scheme.privileged, [
      { scheme: "app", privileges: { standard: true, secure: true, supportFetchAPI: true } },
    ]);
    assert.equal(double.scheme.registeredBeforeReady, true);
    assert.ok(double.scheme.handlers.has("app"), "the scheme is served");
    assert.equal(win.options.webPreferences?.devTools, false);
    assert.equal(win.options.webPreferences.preload, "/opt/piper/resources/app.asar/out/preload/index.cjs");

    // The dev server's page is not the app's own page: it may not call the IPC API.
    const refused = await ipcCall(double, DEV_URL, "status", {});
    assert.equal(refused.ok ? "ok" : refused.error.code, "forbidden_origin");
    const own = await ipcCall(double, OWN_PAGE, "status", {});
    assert.equal(own.ok, true);

    assert.equal(double.app.events.count("web-contents-created"), 1, "every web contents is guarded");
    double.app.events.emit("web-contents-created", new RecordedEvent(), win.webContents);
    assert.equal(win.webContents.navigate(DEV_URL), true, "navigation to the dev server is prevented");

    let granted: boolean | null = null;
    double.session.request?.(null, "media", (g) => (granted = g));
    assert.equal(granted, false);
    assert.equal(double.session.check?.(null, "notifications", OWN_PAGE, {}), false);
    assert.equal(double.session.device?.({ deviceType: "hid", origin: OWN_PAGE }), false);
    let headers: Record<string, string[]> = {};
    double.session.headers?.({ responseHeaders: {} }, (r) => (headers = r.responseHeaders));
    assert.deepEqual(headers, { "Content-Security-Policy": [CSP] });
  });

  it("a developer's build (not packaged): the dev server's page, DevTools, and a debugger are allowed", async () => {
    const double = electronDouble({ packaged: false });
    const o = options({
      argv: ["/opt/piper/electron", "--remote-debugging-port=9222", "--hidden"],
      execArgv: ["--inspect-port=0"],
    });
    const app = await runDesktopApp(double.api, o);
    assert.ok(app, o.reported.join("\n"));
    started.push({ double, app });
    assert.equal(double.windows.length, 0, "--hidden starts in the tray");
    app.shell.showWindow();
    const win = double.windows[0];
    assert.ok(win);
    assert.equal(win.loaded, DEV_URL);
    assert.equal(win.options.webPreferences?.devTools, true);
    assert.equal(
      (await ipcCall(double, DEV_URL, "status", {})).ok,
      true,
      "the dev server's page is the own page in development",
    );
  });
});

describe("the window's own scheme (app://piper-link/)", () => {
  it("serves the built renderer with the CSP, and nothing outside its folder", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "piper-app-scheme-"));
    const renderer = path.join(root, "renderer");
    await mkdir(path.join(renderer, "assets"), { recursive: true });
    await writeFile(
      path.join(renderer, "index.html"),
      "<!doctype html><script type=module src=./assets/index.js></script>",
    );
    await writeFile(path.join(renderer, "assets", "index.js"), "export {};");
    await writeFile(path.join(root, "secret.txt"), "outside the renderer");
    const double = electronDouble();
    serveAppScheme(double.api, renderer);
    const handler = double.scheme.handlers.get("app");
    assert.ok(handler);
    const get = (url: string, method = "GET"): Promise<Response> =>
      Promise.resolve(handler(new Request(url, { method })));

    const page = await get("app://piper-link/index.html#/requests");
    assert.equal(page.status, 200);
    assert.match(await page.text(), /assets\/index\.js/);
    assert.equal(page.headers.get("content-security-policy"), CSP);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    const script = await get("app://piper-link/assets/index.js");
    assert.equal(script.status, 200);
    assert.equal(script.headers.get("content-type"), "text/javascript");
    assert.equal((await get("app://piper-link/")).status, 200, "/ is index.html");

    for (const url of [
      "app://piper-link/%2e%2e/secret.txt",
      "app://piper-link/assets%2f..%2f..%2fsecret.txt",
      "app://piper-link/..%5csecret.txt",
      "app://piper-link/a/../../secret.txt",
      "app://piper-link/%00index.html",
      "app://evil/index.html",
      "app://piper-link/missing.js",
    ]) {
      const r = await get(url);
      assert.equal(r.status, 404, url);
      assert.equal(await r.text(), "", url);
    }
    assert.equal((await get("app://piper-link/index.html", "POST")).status, 405);
    assert.equal(appFileFor("app://piper-link/assets/index.js", renderer), path.join(renderer, "assets", "index.js"));
    assert.equal(appFileFor("not a url", renderer), null);
  });
});

describe("debuggingSwitch reads Chromium's switches and argv", () => {
  const none = { hasSwitch: () => false, getSwitchValue: () => "" };
  it("finds each form; ignores what follows `--` and unrelated switches", () => {
    for (const arg of [
      "--remote-debugging-port=1",
      "-remote-debugging-pipe",
      "--remote-debugging-address=0.0.0.0",
      "--inspect",
      "--inspect_brk=1",
      "--debug",
      "--js-flags=--inspect",
    ]) {
      assert.equal(debuggingSwitch(none, ["app", arg]), arg, arg);
    }
    for (const argv of [
      ["app", "--hidden"],
      ["app", "--", "--inspect"],
      ["app", "--js-flags=--expose-gc"],
      ["--inspect"],
    ]) {
      assert.equal(debuggingSwitch(none, argv), null, JSON.stringify(argv));
    }
  });
});

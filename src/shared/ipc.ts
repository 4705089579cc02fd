/** IPC between the preload bridge and the Electron main process. */
/** renderer -> main: one LinkApi call (method, params), answered with its result. */
export const LINK_IPC_CHANNEL = "piper-link:call";
/** main -> renderer: a ControlEvent pushed by the core. */
export const LINK_EVENT_CHANNEL = "piper-link:event";
/** main -> renderer: show this screen (a notification or the tray menu was clicked). */
export const LINK_NAVIGATE_CHANNEL = "piper-link:navigate";
export const NAVIGABLE_VIEWS = ["requests", "grants", "secrets", "activity", "settings"] as const;
export type NavigableView = (typeof NAVIGABLE_VIEWS)[number];
/**
 * What the preload exposes as `window.piperLink`: one function per control method (keyed by its
 * name) that answers a `ControlOutcome` value, never a thrown error, because an Error crossing IPC
 * and the context bridge loses its `code`. The window turns it into a `LinkApi` with
 * `createLinkApi` + `unwrapControlOutcome` (src/shared/control.ts), which rethrows a `LinkError`.
 */
export type LinkIpcBridge = Readonly<Record<string, (params: unknown) => Promise<unknown>>>;

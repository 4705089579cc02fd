/** IPC between the preload bridge and the Electron main process. */
/** renderer -> main: one LinkApi call (method, params), answered with its result. */
export const LINK_IPC_CHANNEL = "piper-link:call";
/** main -> renderer: a ControlEvent pushed by the core. */
export const LINK_EVENT_CHANNEL = "piper-link:event";
/** main -> renderer: show this screen (a notification or the tray menu was clicked). */
export const LINK_NAVIGATE_CHANNEL = "piper-link:navigate";
export const NAVIGABLE_VIEWS = ["requests", "grants", "secrets", "activity", "settings"] as const;
export type NavigableView = (typeof NAVIGABLE_VIEWS)[number];

/** The one IPC channel between the preload bridge and the Electron main process. */
export const LINK_IPC_CHANNEL = "piper-link:call";

/**
 * The window's one IPC channel (LINK_IPC_CHANNEL): each call names a control method and its params
 * and is answered with a `ControlOutcome` value, never a thrown error, so the window keeps each
 * error's code (an Error crossing IPC loses it). A call from any frame but the window's own page is
 * refused with `forbidden_origin` before anything runs (DESIGN.md section 7); everything else goes
 * through the one `dispatchControl` (src/shared/control.ts), which answers `bad_request` for an
 * unknown method or params failing the method's schema.
 */
import { dispatchControl, type ControlOutcome, type LinkApi } from "../../shared/control.js";
import { LINK_IPC_CHANNEL } from "../../shared/ipc.js";
import type { ElectronApi, ShellInvokeEvent } from "./electron-api.js";
import { isOwnPageUrl } from "./shell-policy.js";

export interface LinkIpcOptions {
  api: LinkApi;
  /** The window's own page (see `isOwnPageUrl`): the only frame whose calls are served. */
  ownPageUrl: string;
  /** Told about failures that are not `LinkError`s (for the log). */
  onUnexpected?: (method: string, err: unknown) => void;
}

/** The refusal of a call from a foreign frame. */
export const FOREIGN_FRAME_OUTCOME: ControlOutcome = {
  ok: false,
  error: { code: "forbidden_origin", message: "IPC refused: unknown sender frame." },
};

/** Answers one IPC call (sender event, method, params) as a `ControlOutcome`; never throws. */
export function handleLinkCall(
  options: LinkIpcOptions,
  event: ShellInvokeEvent,
  method: unknown,
  params: unknown,
): Promise<ControlOutcome> {
  if (!isOwnPageUrl(event.senderFrame?.url, options.ownPageUrl)) return Promise.resolve(FOREIGN_FRAME_OUTCOME);
  return dispatchControl(options.api, method, params, options.onUnexpected);
}

/** Registers the handler on `ipcMain`; the returned function removes it. */
export function registerLinkIpc(electron: Pick<ElectronApi, "ipcMain">, options: LinkIpcOptions): () => void {
  electron.ipcMain.handle(LINK_IPC_CHANNEL, (event, method, params) => handleLinkCall(options, event, method, params));
  return () => electron.ipcMain.removeHandler(LINK_IPC_CHANNEL);
}

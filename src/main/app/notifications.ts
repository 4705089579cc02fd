/**
 * Desktop notifications for pending requests: one per request the shell has not seen before, never
 * again for the same request however often the pending list is reloaded (every status or authority
 * event reloads it), and none for requests that were already pending when the shell started (the
 * tray shows those). Agent-chosen text goes through `displayText`, so a hostile name cannot hide
 * characters or flood the notification.
 */
import path from "node:path";
import type { RequestView } from "../../shared/authority.js";
import { displayText } from "../../shared/display.js";
import type { ElectronApi } from "./electron-api.js";

/** How many request IDs are remembered (oldest forgotten first); far above any real pending list. */
export const REMEMBERED_REQUESTS = 2000;

/** The notification's title and body for a pending request. */
export function requestNotificationText(request: RequestView): { title: string; body: string } {
  const who = displayText(request.agentName ?? request.agentClientId, 80);
  const proc =
    request.process === null
      ? ""
      : ` (${displayText(path.basename(request.process.executable ?? "?"), 80)}, pid ${request.process.pid})`;
  const reason = request.reason === null ? "No reason given." : displayText(request.reason, 200);
  return {
    title: `${who} wants ${displayText(request.variable.toUpperCase(), 120)}`,
    body: `${reason}${proc}\nClick to approve or deny.`,
  };
}

export interface RequestNotifier {
  /**
   * Takes the current pending list. The first call only records what is pending (no notification);
   * later calls show one notification per request not seen before, if `enabled` (the person's
   * setting) and the system supports notifications. Requests seen while disabled count as seen.
   * Returns the IDs notified now.
   */
  update(pending: readonly RequestView[], enabled: boolean): string[];
}

/** Creates the notifier; a click on a notification calls `onClick` with the request's ID. */
export function createRequestNotifier(
  electron: Pick<ElectronApi, "Notification">,
  onClick: (requestId: string) => void,
): RequestNotifier {
  // A Set keeps insertion order, so the oldest IDs are the first to forget.
  const seen = new Set<string>();
  let primed = false;
  const remember = (id: string): void => {
    seen.add(id);
    if (seen.size > REMEMBERED_REQUESTS) {
      const oldest = seen.values().next();
      if (oldest.done !== true) seen.delete(oldest.value);
    }
  };
  return {
    update(pending, enabled) {
      const fresh = pending.filter((r) => !seen.has(r.id));
      for (const r of fresh) remember(r.id);
      if (!primed) {
        primed = true;
        return [];
      }
      if (!enabled || fresh.length === 0 || !electron.Notification.isSupported()) return [];
      for (const request of fresh) {
        const n = new electron.Notification(requestNotificationText(request));
        n.on("click", () => onClick(request.id));
        n.show();
      }
      return fresh.map((r) => r.id);
    },
  };
}

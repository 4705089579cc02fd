/**
 * What every WebSocket connection of the Link keeps, whichever channel it is on: when it connected,
 * when it last spoke (idle timeout), whether it answered the last ping (heartbeat), the frame guard
 * (rate, size, protocol errors), and a clean close.
 */
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import { FrameGuard } from "./frame-guard.js";
import type { LinkLimits } from "./limits.js";

export abstract class ChannelBase {
  readonly connectedAt: number;
  lastActivity: number;
  alive = true;
  protected readonly guard: FrameGuard;

  constructor(
    readonly ws: WebSocket,
    now: () => number,
    limits: LinkLimits,
    log: Logger,
    channel: string,
  ) {
    this.connectedAt = now();
    this.lastActivity = this.connectedAt;
    this.guard = new FrameGuard(limits, now);
    ws.on("message", (data, isBinary) => {
      this.lastActivity = now();
      this.onFrame(data, isBinary);
    });
    ws.on("pong", () => {
      this.alive = true;
    });
    // ws reports oversized frames and invalid UTF-8 here and closes with 1009 / 1007 itself.
    ws.on("error", (err) => log.warn({ channel, err: err.message }, "connection error"));
  }

  protected abstract onFrame(data: RawData, isBinary: boolean): void;

  close(code: number, reason: string): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }
}

/**
 * One UI or CLI connection on `/v1/control`. The first frame must be `auth` with the per-start
 * token (compared in constant time) or with a single-use UI code (issue 16 item 8: the browser
 * opened by `piper-link ui` gets a code, never the token, in its address; the reply then carries
 * the token for the page to keep); then `call` frames run LinkApi methods, with params and results
 * validated by the shared schemas, and status changes are pushed as `event` frames.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import {
  ControlClientMessageSchema,
  dispatchControl,
  type ControlEvent,
  type ControlMethod,
  type ControlServerMessage,
  type LinkApi,
} from "../../../shared/control.js";
import type { ErrorCode } from "../../../shared/errors.js";
import { CloseCode, type RequestId } from "../../../shared/protocol.js";
import { LINK_VERSION } from "../../../shared/version.js";
import { describeIssues } from "./frame-guard.js";
import type { LinkLimits } from "./limits.js";
import { ChannelBase } from "./channel-base.js";

export function tokensEqual(given: string, expected: string): boolean {
  // Hashing first makes both sides the same length, so the compare leaks neither length nor content.
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface ControlHost {
  now(): number;
  token: string;
  /** Redeems a single-use UI code (true once per valid code; see ui-codes.ts). */
  redeemUiCode(code: string): boolean;
  api: LinkApi;
  log: Logger;
}

export class ControlChannel extends ChannelBase {
  authenticated = false;

  constructor(
    ws: WebSocket,
    private readonly host: ControlHost,
    limits: LinkLimits,
  ) {
    super(ws, () => host.now(), limits, host.log, "control");
  }

  send(message: ControlServerMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  pushEvent(event: ControlEvent): void {
    if (this.authenticated) this.send({ type: "event", event });
  }

  private fail(id: RequestId | null, code: ErrorCode, message: string): void {
    this.send({ type: "error", id, code, message });
  }

  protected onFrame(data: RawData, isBinary: boolean): void {
    const verdict = this.guard.read(data, isBinary);
    if (verdict.kind === "close") {
      this.close(verdict.closeCode, verdict.reason);
      return;
    }
    if (verdict.kind === "reject") {
      this.fail(verdict.id, verdict.code, verdict.message);
      return;
    }
    const parsed = ControlClientMessageSchema.safeParse(verdict.value);
    if (!parsed.success) {
      const v = this.guard.invalid(
        verdict.id,
        "bad_request",
        `Invalid control frame: ${describeIssues(parsed.error.issues)}`,
      );
      if (v.kind === "close") this.close(v.closeCode, v.reason);
      else if (v.kind === "reject") this.fail(v.id, v.code, v.message);
      return;
    }
    const message = parsed.data;
    if (message.type === "auth") {
      if ("code" in message) {
        if (!this.host.redeemUiCode(message.code)) {
          this.host.log.warn("control channel: unknown, used or expired UI code");
          this.fail(
            null,
            "unauthorized",
            "This address was already used or has expired. Run `piper-link ui` for a new one.",
          );
          this.close(CloseCode.unauthorized, "unauthorized");
          return;
        }
        this.authenticated = true;
        this.send({ type: "authenticated", link: { version: LINK_VERSION }, token: this.host.token });
        return;
      }
      if (!tokensEqual(message.token, this.host.token)) {
        this.host.log.warn("control channel: wrong token");
        this.fail(null, "unauthorized", "Wrong control token.");
        this.close(CloseCode.unauthorized, "unauthorized");
        return;
      }
      this.authenticated = true;
      this.send({ type: "authenticated", link: { version: LINK_VERSION } });
      return;
    }
    if (!this.authenticated) {
      this.fail(message.id, "unauthorized", "Authenticate with the control token first.");
      this.close(CloseCode.unauthorized, "unauthorized");
      return;
    }
    void this.call(message.id, message.method, message.params);
  }

  private async call(id: RequestId, method: ControlMethod, rawParams: unknown): Promise<void> {
    const outcome = await dispatchControl(this.host.api, method, rawParams, (m, err) =>
      this.host.log.error({ method: m, err: err instanceof Error ? err.message : String(err) }, "control call failed"),
    );
    if (outcome.ok) this.send({ type: "result", id, result: outcome.result });
    else this.fail(id, outcome.error.code, outcome.error.message);
  }
}

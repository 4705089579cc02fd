/**
 * What every WebSocket connection of the Link does with an incoming frame before it means
 * anything: rate limiting, JSON parsing, and counting protocol errors towards a close. Shared by
 * the agent and the control channel.
 */
import type { RawData } from "ws";
import type { ErrorCode } from "../../../shared/errors.js";
import { CloseCode, RequestIdSchema, type RequestId } from "../../../shared/protocol.js";
import type { LinkLimits } from "./limits.js";
import { TokenBucket, WindowCounter } from "../../../shared/rate-limit.js";

export type FrameVerdict =
  | { kind: "frame"; value: Record<string, unknown>; id: RequestId | null }
  | { kind: "reject"; id: RequestId | null; code: ErrorCode; message: string }
  | { kind: "close"; closeCode: number; reason: string };

export class FrameGuard {
  private readonly bucket: TokenBucket;
  private readonly protocolErrors: WindowCounter;
  private readonly rateStrikes: WindowCounter;

  constructor(private readonly limits: LinkLimits, now: () => number) {
    this.bucket = new TokenBucket(limits.messageBurst, limits.messagesPerSecond, now);
    this.protocolErrors = new WindowCounter(60_000, now);
    this.rateStrikes = new WindowCounter(60_000, now);
  }

  /** Reads one frame; a `reject` verdict has already been counted as a protocol error. */
  read(data: RawData, isBinary: boolean): FrameVerdict {
    if (!this.bucket.take()) {
      if (this.rateStrikes.hit() > this.limits.maxRateLimitStrikes) {
        return { kind: "close", closeCode: CloseCode.rateLimited, reason: "rate limit exceeded repeatedly" };
      }
      return { kind: "reject", id: null, code: "rate_limited", message: "Too many messages; slow down and retry." };
    }
    if (isBinary) return this.invalid(null, "malformed_frame", "Piper Link accepts JSON text frames only.");
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawToString(data));
    } catch {
      return this.invalid(null, "malformed_frame", "The frame is not valid JSON.");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return this.invalid(null, "malformed_frame", "A frame must be a JSON object with a `type`.");
    }
    const value = parsed as Record<string, unknown>;
    const idResult = RequestIdSchema.safeParse(value["id"]);
    const id = idResult.success ? idResult.data : null;
    if (typeof value["type"] !== "string") return this.invalid(id, "malformed_frame", "A frame must have a string `type`.");
    return { kind: "frame", value, id };
  }

  /** Counts a protocol error; returns a close verdict once there were too many. */
  invalid(id: RequestId | null, code: ErrorCode, message: string): FrameVerdict {
    if (this.protocolErrors.hit() > this.limits.maxProtocolErrors) {
      return { kind: "close", closeCode: CloseCode.protocolErrors, reason: "too many protocol errors" };
    }
    return { kind: "reject", id, code, message };
  }
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

/** One line describing the first problems zod found, for `bad_request` messages. */
export function describeIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  return issues
    .slice(0, 3)
    .map((i) => (i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message))
    .join("; ");
}

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

  constructor(
    private readonly limits: LinkLimits,
    now: () => number,
  ) {
    this.bucket = new TokenBucket(limits.messageBurst, limits.messagesPerSecond, now);
    this.protocolErrors = new WindowCounter(60_000, now);
    this.rateStrikes = new WindowCounter(60_000, now);
  }

  /**
   * Reads one frame; a `reject` verdict has already been counted as a protocol error. Every reject
   * carries the frame's `id` whenever one can be read (DESIGN.md section 4, issue 16 item 7): a
   * rate-limited, oversized or malformed frame is still answered under its own id, so the caller
   * can fail that one call at once instead of waiting for its timeout.
   */
  read(data: RawData, isBinary: boolean): FrameVerdict {
    const text = isBinary ? null : rawToString(data);
    if (!this.bucket.take()) {
      if (this.rateStrikes.hit() > this.limits.maxRateLimitStrikes) {
        return { kind: "close", closeCode: CloseCode.rateLimited, reason: "rate limit exceeded repeatedly" };
      }
      return {
        kind: "reject",
        id: text === null ? null : recoverId(text),
        code: "rate_limited",
        message: "Too many messages; slow down and retry.",
      };
    }
    if (text === null) return this.invalid(null, "malformed_frame", "Piper Link accepts JSON text frames only.");
    // The WebSocket layer closes far larger frames with 1009 itself; up to that ceiling, answer.
    if (Buffer.byteLength(text, "utf8") > this.limits.maxFrameBytes) {
      return this.invalid(
        recoverId(text),
        "malformed_frame",
        `The frame is larger than ${this.limits.maxFrameBytes} bytes.`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.invalid(recoverId(text), "malformed_frame", "The frame is not valid JSON.");
    }
    if (!isPlainObject(parsed)) {
      return this.invalid(null, "malformed_frame", "A frame must be a JSON object with a `type`.");
    }
    const idResult = RequestIdSchema.safeParse(parsed["id"]);
    const id = idResult.success ? idResult.data : null;
    if (typeof parsed["type"] !== "string")
      return this.invalid(id, "malformed_frame", "A frame must have a string `type`.");
    return { kind: "frame", value: parsed, id };
  }

  /** Counts a protocol error; returns a close verdict once there were too many. */
  invalid(id: RequestId | null, code: ErrorCode, message: string): FrameVerdict {
    if (this.protocolErrors.hit() > this.limits.maxProtocolErrors) {
      return { kind: "close", closeCode: CloseCode.protocolErrors, reason: "too many protocol errors" };
    }
    return { kind: "reject", id, code, message };
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Only the head of a frame is searched for its id, so a flood of large frames costs little. */
const ID_SEARCH_CHARS = 4096;
// A string literal found here is checked by JSON.parse, which refuses raw control characters in it.
const ID_PATTERN = /"id"\s*:\s*("(?:[^"\\]|\\.){1,128}"|-?\d{1,16}(?![\d.eE]))/;

/**
 * The `id` of a frame that is not read in full (rate-limited, oversized) or not valid JSON: the first
 * `"id": <string or integer>` in the frame's head, if it is a valid request id. Best effort by design:
 * a wrong guess only labels an error reply, and the Link never acts on a frame it did not parse.
 */
export function recoverId(text: string): RequestId | null {
  const head = text.length > ID_SEARCH_CHARS ? text.slice(0, ID_SEARCH_CHARS) : text;
  try {
    const whole: unknown = JSON.parse(text.length > ID_SEARCH_CHARS ? "null" : head);
    if (isPlainObject(whole)) {
      const direct = RequestIdSchema.safeParse(whole["id"]);
      return direct.success ? direct.data : null;
    }
  } catch {
    // Not JSON: fall through to the pattern.
  }
  const match = ID_PATTERN.exec(head);
  if (match?.[1] === undefined) return null;
  let literal: unknown;
  try {
    literal = JSON.parse(match[1]);
  } catch {
    return null;
  }
  const id = RequestIdSchema.safeParse(literal);
  return id.success ? id.data : null;
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

/**
 * The SDK's only way to put a frame on the wire or read one off it. Frames are typed from the shared
 * protocol (src/shared/protocol.ts, the one description of the wire format the Link validates
 * against too): a frame whose `type` the protocol does not define, or whose fields do not fit that
 * type, does not compile. Incoming frames are parsed with the protocol's own zod schema.
 */
import type { z } from "zod";
import { LinkMessageSchema, type AgentMessageSchema, type LinkMessage } from "../../../src/shared/protocol.js";

/**
 * An agent -> Link frame as the protocol's schema accepts it (its input shape: fields with a default,
 * such as `wait`, may be left out).
 */
export type AgentFrame = z.input<typeof AgentMessageSchema>;

/** The JSON text of `frame`, ready for `WebSocket.send`. */
export function encodeFrame(frame: AgentFrame): string {
  return JSON.stringify(frame);
}

/**
 * The Link's frame in `text`, validated by `LinkMessageSchema`. Throws (a `SyntaxError` or a
 * `ZodError`) when the text is not JSON or not a frame this protocol version defines.
 */
export function decodeFrame(text: string): LinkMessage {
  return LinkMessageSchema.parse(JSON.parse(text));
}

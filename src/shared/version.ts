/**
 * The Link's version, reported in `welcome`, `/healthz` and the discovery file.
 * Kept as a constant (shared imports nothing with I/O); a test checks it matches package.json.
 */
export const LINK_VERSION = "0.1.0";

/** The agent protocol version this Link speaks (DESIGN.md section 4). */
export const PROTOCOL_VERSION = 1;

/** WebSocket subprotocol for the agent channel. */
export const AGENT_SUBPROTOCOL = "piper-link.v1";

/** WebSocket subprotocol for the UI / CLI control channel. */
export const CONTROL_SUBPROTOCOL = "piper-link-control.v1";

/** The pyper-sdk default port; the Link binds it when free. */
export const DEFAULT_LINK_PORT = 31477;

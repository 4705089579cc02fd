/**
 * Who makes a request of the Link, as the domain steps see it (`resolve`, `resolveMany`, `call`,
 * `requestAccess`, `grants` and the checks): the agent's client ID and the program the OS says is on
 * the other end. Nothing of the transport: the agent channel (loopback/agent-channel.ts) is one
 * requester; a test can hand any object of this shape. Frames go back through the `send` function
 * each handler is given, and waits end on the `signal` each is given.
 */
import type { PeerProcess } from "../../../shared/process.js";
import type { Hello } from "../../../shared/protocol.js";

export interface Requester {
  /** The connection the request came on (`conn_<uuid>`), for the Link's log. */
  readonly connectionId: string;
  /** The agent as it introduced itself in `hello` (its client ID and optional name); null before `hello`. */
  readonly agent: Hello["agent"] | null;
  /**
   * The verified program identity (null: unidentified). Read it at each use, not once: the channel
   * re-checks it before every request and it may change while a request waits (the program exec'd,
   * its script changed, or it exited).
   */
  readonly process: PeerProcess | null;
  /** Settles once the OS lookup of the program is done (it runs in the background after connect). */
  readonly identification: Promise<void>;
}

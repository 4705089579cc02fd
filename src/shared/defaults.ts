/**
 * Defaults that more than one part of Piper Link must agree on: the Link's agent channel and calls,
 * its CLI commands, the SDKs and the authority. Each number is written here once; the parts that use
 * it import it (and may take an option that overrides it).
 */

/** What an agent gets when it does not say otherwise. */
export const AGENT_DEFAULTS = {
  /**
   * How long a request waits for the person's approval when the agent gives no timeout (`resolve`
   * and `resolveMany` `timeoutMs`, `call` `approvalTimeoutMs`, the CLI's `--timeout`), in ms.
   */
  approvalWaitMs: 120_000,
  /**
   * Approval waits one agent (client ID) may have in flight on one instance; one more is refused
   * with `rate_limited` (retryable), so a runaway agent cannot hold the authority's long-polls.
   */
  maxWaitsPerAgent: 20,
} as const;

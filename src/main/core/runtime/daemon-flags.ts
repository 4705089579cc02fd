/**
 * Node options of the long-running headless daemon (issue 12 item 8: memory).
 *
 * `--max-semi-space-size=1` caps each of V8's two young-generation semi-spaces at 1 MiB (Node's
 * default lets them grow to 16 MiB). The daemon's allocations are short-lived (frames, lookups), and
 * a young generation grown by one burst, such as a thousand agents connecting, stays committed long
 * after it: measured on this project's bench, 1,000 connected agents held the Link at about 140 MB
 * with the default and about 100 MB with this cap (32 MB of the difference was an empty young
 * generation). Smaller semi-spaces mean more, shorter scavenges; `npm run bench` shows the CPU per
 * operation next to the memory.
 *
 * V8 reads the flag only when the process starts, so it is passed wherever the daemon is launched:
 * `piper-link start` (the background daemon), the systemd user unit, `npm start`, and the bench.
 * A `piper-link start --foreground` typed by hand runs with Node's defaults.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

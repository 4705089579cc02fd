// One load-generating process for the soak suite: opens N agent connections to the Link (same
// client ID), and each resolves a granted variable in a loop until the deadline, counting answers
// by kind. Prints one JSON summary line and exits. (A process of its own: the Link limits
// connections per process, and the test process must stay free to measure.)
//   node agent-worker.mjs '{"url":…,"clientId":…,"connections":200,"durationMs":60000,"intervalMs":500,"variable":"OPENAI_API_KEY"}'
import WebSocket from "ws";

const o = JSON.parse(process.argv[2]);
const deadline = Date.now() + o.durationMs;
const summary = { ok: 0, errors: {}, closes: {}, retryable: 0, latencyMsMax: 0 };
const count = (bucket, key) => (bucket[key] = (bucket[key] ?? 0) + 1);

function agent(index) {
  return new Promise((resolve) => {
    const ws = new WebSocket(o.url, "piper-link.v1");
    let id = 0;
    let sentAt = 0;
    const next = () => {
      if (Date.now() >= deadline) return ws.close(1000);
      sentAt = performance.now();
      ws.send(JSON.stringify({ type: "resolve", id: ++id, variable: o.variable, wait: false }));
    };
    ws.on("open", () =>
      ws.send(
        JSON.stringify({ type: "hello", id: 0, protocol: 1, agent: { clientId: o.clientId, name: `soak ${index}` } }),
      ),
    );
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === "welcome") return setTimeout(next, Math.random() * o.intervalMs);
      if (m.type === "secret") {
        summary.ok += 1;
        summary.latencyMsMax = Math.max(summary.latencyMsMax, performance.now() - sentAt);
      } else if (m.type === "error") {
        count(summary.errors, m.code);
        if (m.retryable) summary.retryable += 1;
      } else if (m.type === "pending") count(summary.errors, "pending");
      else return;
      setTimeout(next, o.intervalMs);
    });
    ws.on("error", (err) => count(summary.errors, `socket: ${err.message}`));
    ws.on("close", (code) => {
      if (code !== 1000 && code !== 1005) count(summary.closes, String(code));
      resolve();
    });
  });
}

const all = [];
for (let i = 0; i < o.connections; i++) {
  all.push(agent(i));
  // Open in small batches so the Link sees a ramp, not one burst.
  if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
}
await Promise.all(all);
process.stdout.write(`${JSON.stringify(summary)}\n`);

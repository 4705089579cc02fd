/** The window's first screen: whether the Link is signed in and which agents are connected. */
import { useEffect, useState } from "react";
import type { LinkStatus } from "../../shared/control.js";
import { useLinkApi } from "./link-api.js";

export function App() {
  const api = useLinkApi();
  const [status, setStatus] = useState<LinkStatus | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    const load = () =>
      api.status({}).then(
        (s) => live && setStatus(s),
        (e: unknown) => live && setError(e instanceof Error ? e.message : String(e)),
      );
    void load();
    const timer = setInterval(load, 2000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api]);

  if (error !== null) return <main role="alert">Piper Link is not reachable: {error}</main>;
  if (status === null) return <main aria-busy="true">Loading…</main>;
  return (
    <main>
      <h1>Piper Link</h1>
      <p>{status.state === "ready" ? `Signed in — instance ${status.instanceIdRedacted ?? ""}` : "Not signed in"}</p>
      <h2>Connected agents ({status.agents.length})</h2>
      <ul>
        {status.agents.map((a) => (
          <li key={a.connectionId}>
            {a.name ?? a.clientId ?? "unknown agent"} — {a.process ? `${a.process.executable ?? "?"} (pid ${a.process.pid})` : "unknown process"}
          </li>
        ))}
      </ul>
    </main>
  );
}

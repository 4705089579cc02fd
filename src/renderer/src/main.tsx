/**
 * Entry of the window. In Electron the preload bridge provides the Link (`window.piperLink`); in a
 * browser (headless mode) the page connects to the control WebSocket of the Link that served it,
 * with the token from its address fragment.
 */
import "./zod-config.js";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { createLinkApi, unwrapControlOutcome, type LinkClient } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import type { ControlEvent } from "../../shared/control.js";
import type { LinkIpcBridge, NavigableView } from "../../shared/ipc.js";
import { App } from "./App.js";
import { LinkProvider } from "./link-context.js";
import { createSocketLink, takeTokenFromLocation, type ConnectionState, type SocketLinkClient } from "./socket-link.js";
import "./theme.css";

declare global {
  interface Window {
    /** Set by the Electron preload. */
    piperLink?: LinkIpcBridge;
    piperLinkEvents?: {
      subscribe(listener: (event: ControlEvent) => void): () => void;
      onNavigate(listener: (view: NavigableView) => void): () => void;
    };
  }
}

function BrowserRoot({ client }: { client: SocketLinkClient }) {
  const [state, setState] = useState<ConnectionState>(client.state());
  useEffect(() => client.onState(setState), [client]);
  return (
    <LinkProvider client={client} connection={state} desktop={false}>
      <App />
    </LinkProvider>
  );
}

const root = document.getElementById("root");
if (root === null) throw new Error("index.html has no #root element");

if (window.piperLink !== undefined && window.piperLinkEvents !== undefined) {
  const events = window.piperLinkEvents;
  const bridge = window.piperLink;
  // Each answer is a ControlOutcome; a failure is rethrown as a LinkError with its code (the code badge).
  const api = createLinkApi(async (method, params) => {
    const fn = bridge[method];
    if (fn === undefined) throw new LinkError("internal_error", `The window's bridge has no ${method}.`);
    return unwrapControlOutcome(method, await fn(params));
  });
  const client: LinkClient = { api, subscribe: (l) => events.subscribe(l) };
  createRoot(root).render(
    <StrictMode>
      <LinkProvider client={client} connection="open" desktop={true} onNavigate={(l) => events.onNavigate(l)}>
        <App />
      </LinkProvider>
    </StrictMode>,
  );
} else {
  const token = takeTokenFromLocation();
  if (token === null) {
    root.innerHTML = "";
    const p = document.createElement("p");
    p.className = "no-token";
    p.textContent = "Open Piper Link with `piper-link ui` (its address carries this browser's access).";
    root.append(p);
  } else {
    const client = createSocketLink(`ws://${window.location.host}/v1/control`, token);
    createRoot(root).render(
      <StrictMode>
        <BrowserRoot client={client} />
      </StrictMode>,
    );
  }
}

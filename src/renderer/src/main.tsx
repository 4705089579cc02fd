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
import {
  createSocketLink,
  exchangeUiCode,
  takeAccessFromLocation,
  type ConnectionState,
  type SocketLinkClient,
} from "./socket-link.js";
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
  const controlUrl = `ws://${window.location.host}/v1/control`;
  const showMessage = (text: string, alert = false) => {
    root.innerHTML = "";
    const p = document.createElement("p");
    p.className = "no-token";
    // A refused address is news the person must hear (screen readers announce an alert).
    if (alert) p.setAttribute("role", "alert");
    p.textContent = text;
    root.append(p);
  };
  const render = (token: string) => {
    const client = createSocketLink(controlUrl, token);
    createRoot(root).render(
      <StrictMode>
        <BrowserRoot client={client} />
      </StrictMode>,
    );
  };
  const access = takeAccessFromLocation();
  if (access === null) {
    showMessage("Open Piper Link with `piper-link ui` (its address carries this browser's access).");
  } else if (access.kind === "token") {
    render(access.token);
  } else {
    exchangeUiCode(controlUrl, access.code).then(render, (err: unknown) =>
      showMessage(
        err instanceof Error ? err.message : "Piper Link refused this address. Run `piper-link ui` for a new one.",
        true,
      ),
    );
  }
}

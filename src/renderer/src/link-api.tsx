/**
 * How the UI reaches the Link: the `LinkApi` from src/shared, provided once at the root. In Electron
 * it is the preload bridge (`window.piperLink`); the headless browser transport arrives with the UI issue.
 */
import { createContext, useContext, type ReactNode } from "react";
import type { LinkApi } from "../../shared/control.js";

declare global {
  interface Window {
    piperLink?: LinkApi;
  }
}

const LinkApiContext = createContext<LinkApi | null>(null);

export function LinkApiProvider({ api, children }: { api: LinkApi; children: ReactNode }) {
  return <LinkApiContext.Provider value={api}>{children}</LinkApiContext.Provider>;
}

export function useLinkApi(): LinkApi {
  const api = useContext(LinkApiContext);
  if (api === null) throw new Error("useLinkApi() must be used inside <LinkApiProvider>.");
  return api;
}

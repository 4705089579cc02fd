/**
 * pyper-sdk's grant page, served by the Link (DESIGN.md section 5): when a pyper-sdk agent has no
 * grant, it sends the person to `<grant page>?response_type=code&scope=manage_grants&client=<agent>
 * &variable=<name>`. Point pyper-sdk's grant page at `http://127.0.0.1:31477/grant`: the page names
 * the pending request and the Link shows it in its window (the desktop app comes to the front; an
 * open browser window switches to Requests). Nothing is approved here — a GET has no say.
 */
import escape from "escape-html";
import type { RequestView } from "../../../shared/authority.js";
import { normalizeVariable } from "../../../shared/protocol.js";

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escape(title)} — Piper Link</title>
<style>:root{color-scheme:light dark}body{font:16px/1.5 system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;background:Canvas;color:CanvasText}main{max-width:34rem;padding:2rem}h1{font-size:1.4rem}code{font-size:.95em}</style>
</head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;
}

export interface GrantPageDeps {
  pendingRequests(): Promise<RequestView[]>;
  /** Brings the request to the person's attention (window to the front / UI switches to it). */
  show(request: RequestView): void;
}

export async function grantPage(
  query: URLSearchParams,
  deps: GrantPageDeps,
): Promise<{ status: number; html: string }> {
  const client = query.get("client") ?? "";
  const variable = query.get("variable") ?? "";
  if (
    query.get("response_type") !== "code" ||
    query.get("scope") !== "manage_grants" ||
    client.length === 0 ||
    client.length > 128 ||
    variable.length === 0 ||
    variable.length > 256
  ) {
    return {
      status: 400,
      html: page(
        "This link is incomplete",
        "<p>A grant page address needs <code>response_type=code</code>, <code>scope=manage_grants</code>, <code>client</code> and <code>variable</code>. Run your agent again and follow the address it prints.</p>",
      ),
    };
  }
  const wanted = normalizeVariable(variable);
  const request = (await deps.pendingRequests())
    .filter((r) => r.agentClientId === client && r.variable === wanted)
    .sort((a, b) => b.createdAt - a.createdAt)[0];
  const who = `<strong>${escape(client)}</strong>`;
  const what = `<code>${escape(wanted.toUpperCase())}</code>`;
  if (request === undefined) {
    return {
      status: 404,
      html: page(
        "Nothing to approve right now",
        `<p>There is no pending request from ${who} for ${what}. Requests expire after a while: run the agent again, then follow the new link.</p>`,
      ),
    };
  }
  deps.show(request);
  return {
    status: 200,
    html: page(
      `${request.agentName ?? client} is asking for ${wanted.toUpperCase()}`,
      `<p>Approve or deny it in the <strong>Piper Link</strong> window, where you also choose for how long. The request is shown there now.</p><p>No window? Run <code>piper-link ui</code>.</p>`,
    ),
  };
}

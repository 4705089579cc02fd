/**
 * The one small stylesheet and favicon of the plain HTML pages people meet outside the window: the
 * authority's sign-in, sign-up and device pages (src/server/pages.ts) and the Link's "You're signed
 * in" callback page (src/main/core/account/sign-in-flows.ts). Light and dark follow the system; no scripts,
 * no external loads (the style is inline, the icon a data: URL of assets/icon.svg), so the pages'
 * CSP needs only `style-src 'unsafe-inline'` and `img-src data:`. Pure strings: usable by the
 * server and the core alike.
 */
import escapeHtml from "escape-html";

/** assets/icon.svg as a data: URL (keep in step with the file; scripts/make-icons.mjs reads the same source). */
export const FAVICON_DATA_URL =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64' role='img' aria-label='Piper Link'%3E %3Crect width='64' height='64' rx='14' fill='%231f4fd1'/%3E %3Cpath d='M20 44V20h13a8 8 0 0 1 0 16H26' fill='none' stroke='%23fff' stroke-width='6' stroke-linecap='round' stroke-linejoin='round'/%3E %3Ccircle cx='44' cy='44' r='5' fill='%237fe0b5'/%3E %3C/svg%3E";

/** The pages' stylesheet: a centred card, readable type, one accent, visible focus; light and dark. */
export const PAGE_STYLE = `
:root{color-scheme:light dark;--fg:#16181d;--bg:#f6f7f9;--card:#fff;--muted:#5b6270;--accent:#1f4fd1;--ok:#1b7f4b;--err:#b3261e;--border:#dfe2e8}
@media (prefers-color-scheme:dark){:root{--fg:#eceef2;--bg:#121317;--card:#1c1e24;--muted:#a4abb8;--accent:#7ea2ff;--ok:#6fd39b;--err:#ff8a80;--border:#2e3138}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);display:grid;place-items:center;min-height:100vh;padding:1rem}
main{background:var(--card);padding:2rem;border-radius:14px;width:min(440px,100%);border:1px solid var(--border);box-shadow:0 2px 16px #0002}
.brand{display:flex;align-items:center;gap:.5rem;font-weight:700;margin:0 0 1.25rem;color:var(--fg)}.brand img{width:28px;height:28px}
h1{font-size:1.4rem;margin:0 0 .5rem}p{color:var(--muted);margin:.5rem 0}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid var(--muted);border-radius:8px;background:transparent;color:inherit}
button{margin-top:1.25rem;width:100%;padding:.7rem;font:inherit;font-weight:600;border:0;border-radius:8px;background:var(--accent);color:#fff;cursor:pointer}
@media (prefers-color-scheme:dark){button{color:#0b1020}}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.err{color:var(--err);font-weight:600}.done h1{color:var(--ok)}.mark{font-size:2rem;line-height:1;margin:0 0 .5rem;color:var(--ok)}a{color:var(--accent)}`;

/** Escapes text for HTML element content and attribute values. */
export function escapePageText(text: string): string {
  return escapeHtml(text);
}

/**
 * A whole page: `title` (plain text, escaped here) and `bodyHtml` (already-safe HTML the caller
 * built with escapePageText), inside the shared card with the Piper mark and favicon. `tone`
 * "done" colours the heading as a success.
 */
export function renderPage(title: string, bodyHtml: string, tone: "plain" | "done" = "plain"): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark"><title>${escapePageText(title)} — Piper</title><link rel="icon" type="image/svg+xml" href="${FAVICON_DATA_URL}"><style>${PAGE_STYLE}</style></head><body><main${tone === "done" ? ' class="done"' : ""}><p class="brand"><img src="${FAVICON_DATA_URL}" alt="" width="28" height="28">Piper</p>${bodyHtml}</main></body></html>`;
}

/** The Link's page after the browser sign-in came back: what happened and what to do next. */
export function signedInPage(): string {
  return renderPage(
    "You're signed in",
    `<p class="mark" aria-hidden="true">✓</p><h1>You're signed in</h1><p>Piper Link on this computer is connected to your account. You can close this tab and return to Piper Link.</p>`,
    "done",
  );
}

/** The Link's page when a sign-in answer was refused or failed; `why` is plain text. */
/** The page for an answer that is not the sign-in in progress: that sign-in is not over. */
export function notThisSignInPage(): string {
  return renderPage(
    "Not this sign-in",
    `<h1>Not this sign-in</h1><p class="err" role="alert">This answer does not belong to the sign-in in progress (state mismatch), so it was not used.</p><p>The sign-in you started is still waiting: finish it in the tab Piper Link opened, or start again from Piper Link.</p>`,
  );
}

export function signInFailedPage(why: string): string {
  return renderPage(
    "Sign-in failed",
    `<h1>Sign-in failed</h1><p class="err" role="alert">${escapePageText(why)}</p><p>Start again from Piper Link.</p>`,
  );
}

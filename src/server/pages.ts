/**
 * The authority's own pages — sign up, sign in, device code, and plain messages — as small,
 * accessible HTML documents: labelled fields, one primary action, errors announced with role=alert,
 * light and dark following the system. No scripts.
 */
import esc from "escape-html";

const STYLE = `
:root{color-scheme:light dark;--fg:#16181d;--bg:#f6f7f9;--card:#fff;--muted:#5b6270;--accent:#1f4fd1;--err:#b3261e}
@media (prefers-color-scheme:dark){:root{--fg:#eceef2;--bg:#121317;--card:#1c1e24;--muted:#a4abb8;--accent:#7ea2ff;--err:#ff8a80}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);display:grid;place-items:center;min-height:100vh}
main{background:var(--card);padding:2rem;border-radius:12px;width:min(420px,92vw);box-shadow:0 2px 12px #0002}
h1{font-size:1.4rem;margin:0 0 .5rem}p{color:var(--muted)}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem .7rem;font:inherit;border:1px solid var(--muted);border-radius:8px;background:transparent;color:inherit}
button{margin-top:1.25rem;width:100%;padding:.7rem;font:inherit;font-weight:600;border:0;border-radius:8px;background:var(--accent);color:#fff;cursor:pointer}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.err{color:var(--err);font-weight:600}a{color:var(--accent)}`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)} — Piper</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

function errorBlock(error: string | null): string {
  return error ? `<p class="err" role="alert">${esc(error)}</p>` : "";
}

export function signInPage(o: { csrf: string; next: string; error: string | null; email?: string }): string {
  return page(
    "Sign in",
    `<h1>Sign in to Piper</h1><p>Piper Link on this computer is asking to connect to your account.</p>${errorBlock(o.error)}
<form method="post" action="/login"><input type="hidden" name="csrf" value="${esc(o.csrf)}"><input type="hidden" name="next" value="${esc(o.next)}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required value="${esc(o.email ?? "")}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<p>No account yet? <a href="/signup?next=${encodeURIComponent(o.next)}">Create one</a>.</p>`,
  );
}

export function signUpPage(o: { csrf: string; next: string; error: string | null; firstRun: boolean; email?: string; name?: string }): string {
  return page(
    "Create your account",
    `<h1>${o.firstRun ? "Create your local account" : "Create your Piper account"}</h1><p>${o.firstRun ? "This Piper runs on this computer. Your account keeps your secrets and decides which agents may use them." : "Create an account to keep your secrets and approve agents."}</p>${errorBlock(o.error)}
<form method="post" action="/signup"><input type="hidden" name="csrf" value="${esc(o.csrf)}"><input type="hidden" name="next" value="${esc(o.next)}">
<label for="name">Your name</label><input id="name" name="name" autocomplete="name" value="${esc(o.name ?? "")}" autofocus>
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required value="${esc(o.email ?? "")}">
<label for="password">Password (at least 10 characters)</label><input id="password" name="password" type="password" autocomplete="new-password" minlength="10" required>
<button type="submit">Create account</button></form>
<p>Already have one? <a href="/login?next=${encodeURIComponent(o.next)}">Sign in</a>.</p>`,
  );
}

export function devicePage(o: { csrf: string; userCode: string; error: string | null }): string {
  return page(
    "Connect a device",
    `<h1>Connect Piper Link</h1><p>Enter the code shown in your terminal to let that Piper Link use your account.</p>${errorBlock(o.error)}
<form method="post" action="/device"><input type="hidden" name="csrf" value="${esc(o.csrf)}">
<label for="user_code">Code</label><input id="user_code" name="user_code" autocomplete="one-time-code" required value="${esc(o.userCode)}" autofocus>
<button type="submit">Connect</button></form>`,
  );
}

export function messagePage(title: string, message: string): string {
  return page(title, `<h1>${esc(title)}</h1><p>${esc(message)}</p>`);
}

/**
 * The authority's own pages — sign up, sign in, device code, and plain messages — as small,
 * accessible HTML documents: labelled fields, one primary action, errors announced with role=alert,
 * light and dark following the system. No scripts. The stylesheet and favicon are shared with the
 * Link's own "You're signed in" page (src/shared/page-style.ts), so every page of a sign-in looks
 * the same.
 */
import { escapePageText, renderPage } from "../shared/page-style.js";
const esc = escapePageText;

/** A page of the authority, in the stylesheet it shares with the Link's signed-in page (shared/page-style.ts). */
export function page(title: string, body: string): string {
  return renderPage(title, body);
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

export function signUpPage(o: {
  csrf: string;
  next: string;
  error: string | null;
  firstRun: boolean;
  email?: string;
  name?: string;
}): string {
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

/** A plain message; `tone` "done" shows it as a success (e.g. "Piper Link is connected"). */
export function messagePage(title: string, message: string, tone: "plain" | "done" = "plain"): string {
  return renderPage(
    title,
    `${tone === "done" ? '<p class="mark" aria-hidden="true">✓</p>' : ""}<h1>${esc(title)}</h1><p>${esc(message)}</p>`,
    tone,
  );
}

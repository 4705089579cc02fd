// The Piper Link window end to end in real Chromium (Debian's, through playwright-core): the test
// starts the headless Link with its embedded authority (the compiled CLI, real keyring, HTTPS,
// SQLite), opens the browser UI at the address `piper-link ui` prints, and drives it as a person
// would while a real SDK agent in this process asks for secrets.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { AxeBuilder } from "@axe-core/playwright";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { z } from "zod";
import { GrantViewSchema, SecretViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { createPiperClient, PiperForbiddenError, type PiperClient } from "@piper-link/sdk";
import { cli, cliJson, newEnv, stopAll, type CliEnv } from "../test/cli-helpers.js";
import { TEST_PASSPHRASE, TEST_PIN, waitFor } from "../test/helpers.js";
import { CHROMIUM_SKIP, launchChromium } from "../test/chromium.js";
import { startUpstream, type TestUpstream } from "../test/calls-upstream.js";

const SHOTS = path.resolve(import.meta.dirname, "../test-results/ui");
const VALUE = "sk-ui-e2e-7f3a9c-never-shown";
const UiSchema = z.object({ url: z.string(), expiresAt: z.string(), opened: z.boolean() });

let browser: Browser | null = null;
let e: CliEnv;
let status: z.infer<typeof LinkStatusSchema>;
const DESKTOP_DISPLAY = "wayland-e2e";
const clients: PiperClient[] = [];
/** An HTTPS upstream with its own CA, for the calls the Link makes for agents. */
let upstream: TestUpstream;

before(async () => {
  if (CHROMIUM_SKIP !== false) return;
  e = await newEnv();
  upstream = await startUpstream(await fs.mkdtemp(path.join(os.tmpdir(), "piper-ui-ca-")));
  upstream.routes.set("/v1/things", (_r, res) =>
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}'),
  );
  e.env["PIPER_LINK_EXTRA_CA"] = upstream.caFile;
  // The Link's machine is a desktop the person sees (sign-in leads with the browser); the test
  // machine has no display of its own. Wayland, so no X11 risk is reported.
  e.env["WAYLAND_DISPLAY"] = DESKTOP_DISPLAY;
  status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
  cliJson(e, ["dev", "sign-in", "--name", "e2e machine"], LinkStatusSchema);
  browser = await launchChromium();
  await fs.mkdir(SHOTS, { recursive: true });
});

after(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await upstream.close();
  stopAll();
});

function agent(clientId: string, name: string): PiperClient {
  const c = createPiperClient({ clientId, name, linkUrl: status.url, fallbackToEnv: false, approvalTimeoutMs: 60_000 });
  clients.push(c);
  return c;
}

/**
 * An SDK agent (client ID claude-code) in a new terminal session: `setsid node …` makes node the
 * session leader, so its session id is its pid. It asks for `variable` once; `value` settles with what
 * it got (or rejects with what it printed to stderr). It stays alive (its session with it, and so a
 * session-bound grant) until `stop()`.
 */
async function startSessionAgent(
  variable: string,
  reason: string,
): Promise<{ pid: number; value: Promise<string>; stop: () => void }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "piper-session-agent-"));
  const file = path.join(dir, "agent.mts");
  const sdk = path.resolve(import.meta.dirname, "../packages/sdk/src/index.ts");
  await fs.writeFile(
    file,
    `import { createPiperClient } from ${JSON.stringify(sdk)};\n` +
      `const c = createPiperClient({ clientId: "claude-code", name: "Claude Code", linkUrl: ${JSON.stringify(status.url)}, fallbackToEnv: false, approvalTimeoutMs: 60_000 });\n` +
      `const s = await c.getSecret(${JSON.stringify(variable)}, { reason: ${JSON.stringify(reason)} });\n` +
      `c.close();\nprocess.stdout.write(JSON.stringify({ value: s.value }) + "\\n");\n` +
      `process.stdin.resume();\nprocess.stdin.on("end", () => process.exit(0));\n`,
  );
  const child = spawn("setsid", [process.execPath, "--import", "tsx", file], {
    cwd: process.cwd(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const value = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(z.object({ value: z.string() }).parse(JSON.parse(out)).value);
    });
    child.on("exit", (code) => reject(new Error(`the session agent exited ${String(code)}: ${err}`)));
  });
  value.catch(() => undefined);
  assert.ok(child.pid);
  return {
    pid: child.pid,
    value,
    stop: () => {
      child.stdin.end();
      child.kill("SIGKILL");
      void fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** The approval PIN of the test's Link (set at a terminal after its first start), typed at the window's proof step. */
const PIN = TEST_PIN;

/** The dialog's proof step: the PIN (focused), then Enter. */
async function provePin(dialog: Locator): Promise<void> {
  const field = dialog.getByLabel("Approval PIN");
  await field.waitFor();
  assert.equal(await field.evaluate((el) => el === document.activeElement), true, "the PIN field has the focus");
  await field.fill(PIN);
  await field.press("Enter");
}

/** Approve in the Approve dialog, with the proof step when the Link asks for one. */
async function approveIn(dialog: Locator): Promise<void> {
  await dialog.getByRole("button", { name: "Approve", exact: true }).click();
  await provePin(dialog);
}

/** Console errors and CSP violations of every page the tests open; `after` asserts there are none. */
const consoleProblems: string[] = [];

/** Records console errors and CSP violations (Chromium reports both; the listener catches any it does not log). */
async function watchConsole(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`),
    );
  });
  context.on("console", (msg) => {
    if (msg.type() === "error") consoleProblems.push(`${msg.page()?.url() ?? "?"}: ${msg.text()}`);
  });
}

/** Far from UTC (+05:45), so a time shown in UTC cannot pass for local. */
const TIME_ZONE = "Asia/Kathmandu";
const LARGE = { width: 1280, height: 800 };
const SMALL = { width: 800, height: 600 };
/** A phone-sized or side-docked window. */
const NARROW = { width: 390, height: 844 };
/** The tray window's narrowest and widest sizes. */
const TRAY_NARROWEST = { width: 360, height: 640 };
const TRAY = { width: 420, height: 720 };

/**
 * What a person cannot see in full, sideways: the page wider than the window; an element reaching
 * past the window's left or right edge; an element cut off by an ancestor that clips or scrolls
 * sideways (a table cell beyond a table region's visible width counts: at every width the tables
 * show all their columns); an element whose own content is wider than it and clipped or scrolled.
 * Visually hidden text (1 px, clipped on purpose) and form controls' own text are not counted.
 * Each problem names the element, e.g. `td "OPENAI_API_KEY" 40px past div.tableRegion`.
 */
async function cutOffSideways(page: Page): Promise<string[]> {
  // No named functions inside: tsx would wrap them in a helper the page does not have.
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const problems: string[] = [];
    if (document.documentElement.scrollWidth > width)
      problems.push(`the page is ${document.documentElement.scrollWidth - width}px wider than the window`);
    for (const el of Array.from(document.querySelectorAll("body *"))) {
      const r = el.getBoundingClientRect();
      if (r.width <= 1 || r.height <= 1) continue; // visually hidden, or not laid out
      if (el.closest("dialog:not([open])") !== null) continue;
      const cls =
        typeof el.className === "string" && el.className.trim() !== ""
          ? `.${el.className.trim().split(/\s+/).join(".")}`
          : "";
      const text = el.textContent.trim().replace(/\s+/g, " ").slice(0, 40);
      const what = `${el.tagName.toLowerCase()}${cls}${text === "" ? "" : ` "${text}"`}`;
      // The nearest ancestor that clips or scrolls sideways: the element must lie within its box.
      let hidden = false;
      for (let a = el.parentElement; a !== null && a !== document.body; a = a.parentElement) {
        if (getComputedStyle(a).overflowX === "visible") continue;
        const box = a.getBoundingClientRect();
        hidden = box.width <= 1 || box.height <= 1; // inside something visually hidden on purpose
        const past = Math.max(r.right - box.right, box.left - r.left);
        const aCls =
          typeof a.className === "string" && a.className.trim() !== ""
            ? `.${a.className.trim().split(/\s+/).join(".")}`
            : "";
        if (!hidden && past > 1)
          problems.push(`${what} ${Math.round(past)}px outside ${a.tagName.toLowerCase()}${aCls}`);
        break;
      }
      if (hidden) continue;
      if (r.right > width + 0.5) problems.push(`${what} ${Math.round(r.right - width)}px past the window's right edge`);
      else if (r.left < -0.5) problems.push(`${what} ${Math.round(-r.left)}px past the window's left edge`);
      const control =
        el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement;
      if (!control && getComputedStyle(el).overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1)
        problems.push(`${what} holds content ${el.scrollWidth - el.clientWidth}px wider than its box`);
    }
    // The first few: an outer box's problem usually repeats for what it holds.
    return Array.from(new Set(problems)).slice(0, 12);
  });
}

/** A fresh single-use address from `piper-link ui` (each works once, within 60 s: issue 16 item 8). */
function uiAddressOnce(): string {
  return cliJson(e, ["ui"], UiSchema).url;
}

async function openUi(
  colorScheme: "light" | "dark" = "light",
  viewport: { width: number; height: number } = LARGE,
): Promise<{ context: BrowserContext; page: Page }> {
  assert.ok(browser);
  const context = await browser.newContext({ colorScheme, viewport, timezoneId: TIME_ZONE, locale: "en-US" });
  await watchConsole(context);
  const page = await context.newPage();
  page.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
  await page.goto(uiAddressOnce());
  await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
  return { context, page };
}

async function go(page: Page, screen: string): Promise<void> {
  await page.getByRole("navigation", { name: "Piper Link" }).getByRole("button", { name: screen }).click();
  await page.getByRole("heading", { level: 1, name: screen }).waitFor();
}

/** The serious and critical accessibility violations on what the page shows now, one line each. */
async function a11yViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  return bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

/** No serious or critical accessibility violations on what the page shows now. */
async function checkA11y(page: Page, where: string): Promise<void> {
  assert.deepEqual(await a11yViolations(page), [], `accessibility violations on ${where}`);
}

const skip = CHROMIUM_SKIP;

describe("browser UI (headless Link, real Chromium)", { skip }, () => {
  it("signs in with a single-use code: the address drops it, a second use and a wrong token are refused", async () => {
    const uiUrl = uiAddressOnce();
    assert.match(uiUrl, /^http:\/\/127\.0\.0\.1:\d+\/ui\/#code=[A-Za-z0-9_-]{22}$/);
    assert.ok(browser);
    const first = await browser.newContext({ viewport: LARGE, timezoneId: TIME_ZONE, locale: "en-US" });
    await watchConsole(first);
    const page = await first.newPage();
    await page.goto(uiUrl);
    await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
    // The code leaves the address bar (and history) as soon as the page has read it.
    assert.equal(new URL(page.url()).hash, "");
    // A reload keeps this tab signed in: the page kept the token it got for the code.
    await page.reload();
    await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
    await first.close();

    // The same address again (someone who read it from `ps`) is refused: the code worked once.
    const again = await browser.newPage();
    await again.goto(uiUrl);
    await again.getByRole("alert").filter({ hasText: "already used" }).waitFor();
    await again.close();

    const wrong = await browser.newPage();
    await wrong.goto(uiUrl.replace(/#code=.*/, "#token=not-the-token"));
    await wrong.getByRole("alert").filter({ hasText: "expired" }).waitFor();
    await wrong.close();

    // The server never saw the code or the token in a request line, and nothing logs them.
    const code = uiUrl.split("code=")[1] ?? "";
    const log = await fs.readFile(e.paths.logFile, "utf8");
    assert.ok(!log.includes(code), "the UI code is not in the Link's log");
  });

  it("a page from another origin cannot open the control channel", async () => {
    assert.ok(browser);
    // A real foreign web page (another loopback port is another origin) tries the control socket.
    const evil = http.createServer((_req, res) =>
      res.writeHead(200, { "Content-Type": "text/html" }).end("<!doctype html><title>evil</title>"),
    );
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
    const outcome = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url, "piper-link-control.v1");
          ws.onopen = () => resolve("open");
          ws.onerror = () => resolve("refused");
        }),
      `ws://127.0.0.1:${status.port}/v1/control`,
    );
    assert.equal(outcome, "refused");
    await page.close();
    evil.close();
  });

  it("add a secret, approve once, approve until revoked, revoke, deny — all live, without reloading", async () => {
    const { context, page } = await openUi();
    await page.getByRole("heading", { name: "No pending requests" }).waitFor();

    // Secrets: add one; its value is never shown again.
    await go(page, "Secrets");
    await page.getByRole("button", { name: "Add secret" }).click();
    const dialog = page.getByRole("dialog", { name: "Add a secret" });
    await dialog.getByLabel("Name").fill("OPENAI_API_KEY");
    await dialog.getByLabel("Value").fill(VALUE);
    assert.equal(await dialog.getByLabel("Value").getAttribute("type"), "password");
    await dialog.getByRole("button", { name: "Save" }).click();
    await notice(page, "Saved OPENAI_API_KEY.");
    await page.getByRole("cell", { name: "OPENAI_API_KEY", exact: true }).waitFor();
    assert.ok(!(await page.content()).includes(VALUE), "the value is not in the page");
    await page.getByRole("button", { name: "Replace the value of OPENAI_API_KEY" }).click();
    assert.equal(
      await page.getByRole("dialog").getByLabel("Value").inputValue(),
      "",
      "replacing starts from an empty field",
    );
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "detached" });

    // 1. An agent asks: the request appears without a reload, naming the agent, reason and process.
    await go(page, "Requests");
    const inbox = agent("agent_inbox", "Inbox Summariser");
    const first = inbox.getSecret("OPENAI_API_KEY", { reason: "summarise your inbox" });
    const card = page.getByRole("listitem").filter({ hasText: "Inbox Summariser" });
    await card.waitFor();
    const text = await card.innerText();
    assert.match(text, /agent_inbox/);
    assert.match(text, /OPENAI_API_KEY/);
    assert.match(text, /summarise your inbox/);
    assert.match(text, new RegExp(`pid ${process.pid}`));
    assert.ok(text.includes(process.cwd()), "the working directory is shown");
    await page.getByRole("navigation").getByLabel("1 pending").waitFor();

    // The dialog opens on its default, "For this program" (for 12 hours), focused. Approve once,
    // from the keyboard: the narrower choice is one arrow key up; Enter approves.
    await card.getByRole("button", { name: /^Approve/ }).click();
    const approve = page.getByRole("dialog");
    const programChoice = approve.getByRole("radio", { name: /^For this program/ });
    assert.equal(await programChoice.isChecked(), true);
    assert.equal(await approve.getByRole("radio", { name: /For 12 hours/ }).isChecked(), true);
    assert.equal(await programChoice.evaluate((el) => el === document.activeElement), true);
    assert.equal(await approve.getByLabel("Secret to give").inputValue(), "OPENAI_API_KEY");
    await approve.getByRole("radio", { name: /^Once/ }).check();
    await page.keyboard.press("Enter");
    await provePin(approve);
    assert.equal((await first).value, VALUE);
    await notice(page, "Approved OPENAI_API_KEY for Inbox Summariser, once.");
    await page.getByRole("heading", { name: "No pending requests" }).waitFor();

    // 2. Again (once was used up): approve until revoked; it shows in Grants.
    const second = inbox.getSecret("OPENAI_API_KEY", { reason: "again" });
    await card.waitFor();
    await card.getByRole("button", { name: /^Approve/ }).click();
    await approve.getByRole("radio", { name: /Until I revoke it/ }).check();
    await approveIn(approve);
    assert.equal((await second).value, VALUE);
    assert.equal((await inbox.getSecret("OPENAI_API_KEY")).value, VALUE, "a live grant answers at once");

    await go(page, "Grants");
    const row = page.getByRole("row").filter({ hasText: "Inbox Summariser" });
    await row.waitFor();
    assert.match(await row.innerText(), /Until revoked/);

    // 3. Revoke (with confirmation): the agent's next call is pending again.
    await row.getByRole("button", { name: /^Revoke/ }).click();
    await page.getByRole("dialog", { name: "Revoke this grant?" }).getByRole("button", { name: "Revoke" }).click();
    await notice(page, "Revoked: Inbox Summariser no longer gets OPENAI_API_KEY.");
    await page.getByRole("heading", { name: "No grants in force" }).waitFor();
    await assert.rejects(
      inbox.getSecret("OPENAI_API_KEY", { wait: false }),
      (err: Error) => err.name === "PiperGrantNeededError",
    );

    // 4. Deny: the waiting agent hears `denied`, and the request leaves the list. (The call above
    // left a pending request; this one joins it.)
    await go(page, "Requests");
    // Caught at once: the denial may arrive before the click below returns.
    const third = inbox.getSecret("OPENAI_API_KEY", { reason: "one more time" }).catch((err: unknown) => err);
    await card.waitFor();
    await page.getByRole("button", { name: "Deny OPENAI_API_KEY for Inbox Summariser" }).click();
    assert.ok((await third) instanceof PiperForbiddenError, "the agent hears it was denied");
    await notice(page, "Denied OPENAI_API_KEY to Inbox Summariser.");
    await page.getByRole("heading", { name: "No pending requests" }).waitFor();

    // 5. For 1 hour: the confirmation and Activity say so in words (the stored scope is "until").
    const fourth = inbox.getSecret("OPENAI_API_KEY", { reason: "for an hour" });
    await card.waitFor();
    await card.getByRole("button", { name: /^Approve/ }).click();
    await approve.getByRole("radio", { name: /For a duration/ }).check();
    await approve.getByLabel("Number of hours").fill("1");
    await approveIn(approve);
    assert.equal((await fourth).value, VALUE);
    await notice(page, "Approved OPENAI_API_KEY for Inbox Summariser, for 1 hour.");

    // Activity tells the story in words, filterable by agent (revocations included); never the value.
    await go(page, "Activity");
    await page.getByLabel("Agent client ID").fill("agent_inbox");
    await page.getByRole("button", { name: "Filter" }).click();
    const table = page.getByRole("table", { name: "Activity" });
    await table.getByRole("cell", { name: "approved for 1 hour" }).waitFor();
    await table.getByRole("cell", { name: "approved until revoked" }).waitFor();
    await table.getByRole("cell", { name: "approved once" }).waitFor();
    const ended = table.getByRole("row").filter({ hasText: "Grant ended" });
    assert.match(
      await ended.innerText(),
      /agent_inbox[\s\S]*revoked by you/,
      "the revocation is listed under its agent",
    );
    await table.getByRole("cell", { name: "denied", exact: true }).first().waitFor();
    // Each ask, approval and delivery names the verified program (this test's node process: executable,
    // script, folder, pid), not only the client ID the agent chose.
    for (const what of ["Asked", "Approved", "Delivered"]) {
      const text = await table.getByRole("row").filter({ hasText: what }).first().innerText();
      for (const fact of [process.execPath, process.argv[1] ?? "", `in ${process.cwd()}`, `pid ${process.pid}`])
        assert.ok(text.includes(fact), `the ${what} row names ${fact}: ${text}`);
    }
    const body = await table.innerText();
    assert.doesNotMatch(body, /request\.approved|\buntil\b(?! revoked)|\bok\b/, "no stored codes as text");
    // Times: relative, with the local date-time (the person's time zone) in the tooltip.
    const time = table.locator("time").first();
    assert.match(await time.innerText(), /^(just now|\d+ s ago|\d+ min ago)$/);
    const iso = await time.getAttribute("datetime");
    assert.ok(iso);
    const local = new Date(iso).toLocaleString("en-US", {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: TIME_ZONE,
    });
    assert.equal(await time.getAttribute("title"), local);
    await page.getByLabel("Agent client ID").fill("nobody");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("heading", { name: "No activity yet" }).waitFor();
    assert.ok(!(await page.content()).includes(VALUE));
    await context.close();
  });

  it("a request from a call proposes the least that covers it (use only, to that host, method and path, for this program); reading is a visible, warned choice; Activity says it was used in a call", async () => {
    assert.equal(cli(e, ["secrets", "set", "CALL_KEY"], `${VALUE}\n`).code, 0);
    const caller = agent("agent_caller", "Caller");
    const host = `127.0.0.1:${upstream.port}`;
    const answer = caller.fetch(`${upstream.origin}/v1/things?page=2`, {
      method: "POST",
      auth: { bearer: "CALL_KEY" },
      body: "{}",
    });
    const { context, page } = await openUi();
    const card = page.getByRole("listitem").filter({ hasText: "CALL_KEY" });
    await card.getByRole("button", { name: /^Approve/ }).click();
    const dialog = page.getByRole("dialog");
    const useOnly = dialog.getByRole("radio", { name: "Use it through Piper Link only" });
    assert.equal(await useOnly.isChecked(), true, "use-only is preselected for a call");
    assert.equal(await dialog.getByRole("radio", { name: /^For this program/ }).isChecked(), true);
    assert.equal(await dialog.getByRole("radio", { name: /For 12 hours/ }).isChecked(), true);
    assert.equal(await dialog.getByLabel("Destination hosts").inputValue(), host);
    assert.equal(await dialog.getByLabel(/^Method and path rules/).inputValue(), "POST /v1/things");
    await page.screenshot({ path: path.join(SHOTS, "call-approve-defaults-1280x800.png") });
    // Reading is one click away, and says what it gives beyond the request.
    const widened = dialog.getByText(
      `It asked only to use the secret in a call to ${host}. Reading gives it the value itself`,
    );
    assert.equal(await widened.count(), 0);
    await dialog.getByRole("radio", { name: "Read the value" }).check();
    await widened.waitFor();
    await useOnly.check();
    await widened.waitFor({ state: "detached" });
    await approveIn(dialog);
    const res = await answer;
    assert.equal(res.status, 200);
    const grant = z
      .array(GrantViewSchema)
      .parse(JSON.parse(cli(e, ["grants", "--json"]).stdout))
      .find((g) => g.variable === "call_key");
    assert.deepEqual(grant?.mode, { kind: "use", destinations: [{ host, method: "POST", path: "/v1/things" }] });
    assert.equal(grant.binding?.kind, "program");

    // The Link reports the call to the authority with its usage reports (every 500 ms): wait for that
    // record before the page loads the list, which does not reload for it.
    await waitFor(
      () => /"action": "call\.made"/.test(cli(e, ["activity", "--json", "--secret", "CALL_KEY"]).stdout),
      "the call's record",
      15_000,
    );
    await go(page, "Activity");
    await page.getByLabel("Secret", { exact: true }).fill("CALL_KEY");
    await page.getByRole("button", { name: "Filter" }).click();
    const table = page.getByRole("table", { name: "Activity" });
    // The authority's record of the grant's use and the Link's report of the call can both say so.
    await table
      .getByRole("cell", { name: `used in a call to ${host}; not given to the agent` })
      .first()
      .waitFor();
    // That row is in the unfiltered list too: wait until the filter has replaced the list.
    await waitFor(
      async () => !(await table.innerText()).includes("OPENAI_API_KEY"),
      "the Secret filter to apply",
      15_000,
    );
    assert.doesNotMatch(await table.innerText(), /value given to the agent/);
    // The call itself (reported by the Link, not resolved at the authority) names the program too.
    const called = await table
      .getByRole("row")
      .filter({ hasText: `POST ${host}/v1/things` })
      .first()
      .innerText();
    assert.ok(
      called.includes(process.execPath) && called.includes(`in ${process.cwd()}`),
      `the call names the program: ${called}`,
    );
    await page.screenshot({ path: path.join(SHOTS, "call-activity-1280x800.png") });
    await context.close();
  });

  it("first run in the window: choose a passphrase (strength as typed) and a PIN; Lock now shows why it is locked; Unlock; a wrong PIN says the tries left", async () => {
    assert.ok(browser);
    // Not unattended: no passphrase file, so the window is where the person chooses one.
    const fresh = await newEnv();
    delete fresh.env["PIPER_LINK_PASSPHRASE_FILE"];
    const started = cliJson(fresh, ["start", "--port", "0"], LinkStatusSchema);
    assert.equal(started.vault.state, "new");
    for (const size of [NARROW, LARGE]) {
      const tag = `${size.width}x${size.height}`;
      const context = await browser.newContext({ viewport: size, timezoneId: TIME_ZONE, locale: "en-US" });
      await watchConsole(context);
      const page = await context.newPage();
      await page.goto(cliJson(fresh, ["ui"], UiSchema).url);
      await page.getByRole("heading", { name: "Choose a passphrase" }).waitFor();
      const first = page.getByLabel("Passphrase", { exact: true });
      assert.equal(await first.evaluate((el) => el === document.activeElement), true);
      await first.fill("short");
      await page.getByTestId("passphrase-strength").filter({ hasText: "at least 10 characters" }).waitFor();
      await page.screenshot({ path: path.join(SHOTS, `first-run-weak-${tag}.png`) });
      await checkA11y(page, `first run (${tag})`);
      if (size === LARGE) {
        await first.fill(TEST_PASSPHRASE);
        await page.getByTestId("passphrase-strength").filter({ hasText: "Strong enough." }).waitFor();
        await page.getByLabel("The same passphrase again").fill(TEST_PASSPHRASE);
        await page.getByLabel(/^Approval PIN/).fill(PIN);
        await page.getByRole("button", { name: "Create and unlock" }).click();
        await page.getByRole("heading", { name: "Sign in to Piper Link" }).waitFor();
      }
      await context.close();
    }
    cliJson(fresh, ["dev", "sign-in"], LinkStatusSchema);

    for (const size of [NARROW, LARGE]) {
      const tag = `${size.width}x${size.height}`;
      const context = await browser.newContext({ viewport: size, timezoneId: TIME_ZONE, locale: "en-US" });
      await watchConsole(context);
      const page = await context.newPage();
      await page.goto(cliJson(fresh, ["ui"], UiSchema).url);
      await page.getByRole("navigation", { name: "Piper Link" }).getByRole("button", { name: "Lock now" }).click();
      await page.getByRole("heading", { name: "Piper Link is locked" }).waitFor();
      assert.match(await page.getByTestId("locked-reason").innerText(), /locked on request/);
      await page.screenshot({ path: path.join(SHOTS, `locked-${tag}.png`) });
      await checkA11y(page, `locked (${tag})`);
      const field = page.getByLabel("Passphrase");
      await field.fill("not the passphrase");
      await field.press("Enter");
      await page.getByRole("alert").filter({ hasText: "That is not the passphrase" }).waitFor();
      await field.fill(TEST_PASSPHRASE);
      await field.press("Enter");
      await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
      await context.close();
    }

    // A wrong PIN at the proof step: the dialog stays, saying how many tries are left.
    const { context, page } = await (async () => {
      const c = await browser.newContext({ viewport: LARGE, timezoneId: TIME_ZONE, locale: "en-US" });
      await watchConsole(c);
      const p = await c.newPage();
      await p.goto(cliJson(fresh, ["ui"], UiSchema).url);
      return { context: c, page: p };
    })();
    assert.equal(cli(fresh, ["secrets", "set", "PROOF_KEY"], `${VALUE}\n`).code, 0);
    const asker = createPiperClient({
      clientId: "agent_proof",
      name: "Proof Agent",
      linkUrl: started.url,
      fallbackToEnv: false,
      approvalTimeoutMs: 60_000,
    });
    clients.push(asker);
    const got = asker.getSecret("PROOF_KEY", { reason: "needs your PIN" });
    await page.getByRole("button", { name: /^Approve PROOF_KEY/ }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("button", { name: "Approve", exact: true }).click();
    const pin = dialog.getByLabel("Approval PIN");
    await pin.waitFor();
    await page.screenshot({ path: path.join(SHOTS, "proof-step-1280x800.png") });
    await checkA11y(page, "proof step");
    await pin.fill("000000");
    await pin.press("Enter");
    await dialog
      .getByRole("alert")
      .filter({ hasText: /Wrong PIN — 4 tries left/ })
      .waitFor();
    await page.screenshot({ path: path.join(SHOTS, "proof-step-wrong-pin-1280x800.png") });
    assert.equal(await pin.inputValue(), "", "the wrong PIN is cleared");
    // After a wrong PIN the Link waits a second before it checks another.
    await page.waitForTimeout(1200);
    await pin.fill(PIN);
    await pin.press("Enter");
    assert.equal((await got).value, VALUE);
    await context.close();
    cli(fresh, ["stop"]);
  });

  it("grant terms: the card shows the verified program apart from what the agent says; 'any program' warns; 'for this terminal session' binds to the session; limits are editable", async (t) => {
    assert.equal(cli(e, ["secrets", "set", "SESSION_KEY"], `${VALUE}\n`).code, 0);
    assert.equal(cli(e, ["secrets", "set", "OTHER_KEY"], `${VALUE}\n`).code, 0);
    // The agent runs in a terminal session of its own (setsid makes it the leader, so the session id is
    // its pid), whatever session the test runner has: in a container entered without setsid there is
    // none to name (/proc says 0), and the card rightly offers no session binding there.
    const sessionAgent = await startSessionAgent("SESSION_KEY", "GET https://api.example.com/v1/models");
    const sessionId = sessionAgent.pid;
    t.after(() => sessionAgent.stop());
    const claude = agent("claude-code", "Claude Code");

    const { context, page } = await openUi();
    const card = page.getByRole("listitem").filter({ hasText: "SESSION_KEY" });
    await card.waitFor();
    // The verified program leads; the agent's own words are what it says it is.
    assert.equal(await card.getByTestId("verified-program").innerText(), path.basename(process.execPath));
    assert.match(await card.getByTestId("agent-claim").innerText(), /^says it is Claude Code\s+claude-code$/);
    const facts = await card.getByRole("definition").allInnerTexts();
    assert.ok(
      facts.some((f) => f.includes(process.execPath)),
      "the executable's path",
    );
    assert.ok(facts.includes(process.cwd()), "the folder");
    assert.ok(facts.includes(`session ${sessionId}`), "the terminal session");
    assert.ok(facts.includes(`pid ${sessionAgent.pid}`), "the process");
    await page.screenshot({ path: path.join(SHOTS, "terms-request-card-1280x800.png") });

    await card.getByRole("button", { name: /^Approve/ }).click();
    const dialog = page.getByRole("dialog");
    // "Any program that says it is …" is a choice of its own, with a visible warning.
    const warning = dialog.getByText(
      /Any program on this machine that calls itself Claude Code \(claude-code\) will get this secret/,
    );
    assert.equal(await warning.count(), 0);
    await dialog.getByRole("radio", { name: /^Any program that says it is Claude Code/ }).check();
    await warning.waitFor();
    await page.screenshot({ path: path.join(SHOTS, "terms-approve-any-warning-1280x800.png") });
    // Use-only is offered with the host from the request's reason filled in.
    await dialog.getByRole("radio", { name: "Use it through Piper Link only" }).check();
    assert.equal(await dialog.getByLabel("Destination hosts").inputValue(), "api.example.com");
    await dialog.getByRole("radio", { name: "Read the value" }).check();
    await dialog.getByRole("radio", { name: /^For this terminal session/ }).check();
    await warning.waitFor({ state: "detached" });
    await approveIn(dialog);
    assert.equal(await sessionAgent.value, VALUE);
    await notice(page, "Bound: in this terminal session.");

    // Grants shows what it binds to; the authority stored the session.
    await go(page, "Grants");
    const row = page.getByRole("row").filter({ hasText: "SESSION_KEY" });
    const terms = row.getByTestId("grant-terms");
    assert.match(
      await terms.innerText(),
      new RegExp(`terminal session ${sessionId}: ${path.basename(process.execPath)}`),
    );
    const stored = z
      .array(GrantViewSchema)
      .parse(JSON.parse(cli(e, ["grants", "--json"]).stdout))
      .find((g) => g.variable === "session_key");
    assert.equal(stored?.binding?.kind, "session");
    assert.equal(stored.binding.sessionId, sessionId);

    // Edit limits: at most 5 uses per hour, shown on the row and stored.
    await row.getByRole("button", { name: /^Edit limits of SESSION_KEY/ }).click();
    const limits = page.getByRole("dialog");
    await limits.getByLabel("Limit when and how often it may be used").check();
    await limits.getByLabel("At most uses per hour").fill("5");
    await limits.getByRole("button", { name: "Save limits" }).click();
    // Changing a grant's limits is a yes of its own: the same dialog asks for the PIN.
    await provePin(limits);
    await notice(page, "at most 5/hour");
    await terms.filter({ hasText: "Limits: at most 5/hour" }).waitFor();
    const limited = z
      .array(GrantViewSchema)
      .parse(JSON.parse(cli(e, ["grants", "--json"]).stdout))
      .find((g) => g.id === stored.id);
    assert.equal(limited?.policy?.maxUsesPerHour, 5);
    await page.screenshot({ path: path.join(SHOTS, "terms-grants-1280x800.png") });
    await context.close();

    // 800×600: the fullest dialog (any program, use only, limits) scrolls its body; Approve stays in view.
    const other = claude
      .getSecret("OTHER_KEY", { reason: "POST https://api.example.com/v1/chat" })
      .catch((err: unknown) => err);
    const small = await openUi("light", SMALL);
    await small.page.getByRole("button", { name: /^Approve OTHER_KEY/ }).click();
    const full = small.page.getByRole("dialog");
    await full.getByRole("radio", { name: /^Any program that says it is/ }).check();
    await full.getByRole("radio", { name: "Use it through Piper Link only" }).check();
    await full.getByLabel("Limit when and how often it may be used").check();
    await small.page.screenshot({ path: path.join(SHOTS, "terms-approve-full-800x600.png") });
    await checkA11y(small.page, "approve dialog with every term (800x600)");
    const button = await full.getByRole("button", { name: "Approve" }).boundingBox();
    assert.ok(button);
    assert.ok(button.y + button.height <= SMALL.height, "Approve within the window at 800x600");
    await small.page.keyboard.press("Escape");
    await small.page.getByRole("button", { name: "Deny OTHER_KEY for Claude Code" }).click();
    assert.ok((await other) instanceof PiperForbiddenError);

    // Secrets: the hosts a secret may be sent to, changed without touching its value.
    await go(small.page, "Secrets");
    await small.page.getByRole("button", { name: "Replace the value of OTHER_KEY" }).click();
    const edit = small.page.getByRole("dialog");
    await edit.getByLabel("Only send it to (optional)").fill("api.example.com");
    await edit.getByRole("button", { name: "Save" }).click();
    await notice(small.page, "Changed where OTHER_KEY may be sent.");
    await small.page
      .getByRole("row")
      .filter({ hasText: "OTHER_KEY" })
      .filter({ hasText: "only to api.example.com" })
      .waitFor();
    const listed = z
      .array(SecretViewSchema)
      .parse(JSON.parse(cli(e, ["secrets", "list", "--json"]).stdout))
      .find((x) => x.name === "OTHER_KEY");
    assert.deepEqual(listed?.hosts, ["api.example.com"]);
    await small.page.screenshot({ path: path.join(SHOTS, "terms-secrets-800x600.png") });
    await small.context.close();
  });

  it("each screen in light and dark, at 1280×800, 800×600, 420×720, 390×844 and 360×640: screenshots, nothing cut off sideways, axe finds no serious or critical violations", async (t) => {
    // Something on every screen: a pending request, a batch of requests, a grant, activity.
    const reviewer = agent("agent_reviewer", "Code Reviewer");
    const waiting = reviewer.getSecret("GITHUB_TOKEN", { reason: "review pull requests" }).catch(() => null);
    const deployer = agent("agent_deploy_pipeline_staging", "Deploy Pipeline (staging)");
    const batch = deployer
      .getSecrets(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SENTRY_AUTH_TOKEN"], {
        reason: "deploy the staging stack and upload source maps",
      })
      .catch(() => null);
    // Pass or fail, the next tests start with no request of this one pending.
    t.after(async () => {
      for (const id of pendingIds()) cli(e, ["deny", id]);
      await Promise.all([waiting, batch]);
    });
    const runs = [
      { scheme: "light", size: LARGE },
      { scheme: "dark", size: LARGE },
      { scheme: "light", size: SMALL },
      { scheme: "dark", size: SMALL },
      { scheme: "light", size: TRAY },
      { scheme: "dark", size: TRAY },
      { scheme: "light", size: NARROW },
      { scheme: "dark", size: NARROW },
      { scheme: "light", size: TRAY_NARROWEST },
      { scheme: "dark", size: TRAY_NARROWEST },
    ] as const;
    const cutOff: string[] = [];
    const a11y: string[] = [];
    for (const { scheme, size } of runs) {
      const tag = `${scheme}-${size.width}x${size.height}`;
      const { context, page } = await openUi(scheme, size);
      await page.getByRole("listitem").filter({ hasText: "Code Reviewer" }).waitFor();
      await page.getByRole("listitem").filter({ hasText: "Deploy Pipeline (staging)" }).first().waitFor();
      for (const screen of ["Requests", "Grants", "Secrets", "Activity", "Settings"]) {
        await go(page, screen);
        await page.waitForLoadState("networkidle");
        await page
          .getByText(/^Loading /)
          .first()
          .waitFor({ state: "detached", timeout: 5000 })
          .catch(() => undefined);
        await page.screenshot({ path: path.join(SHOTS, `${screen.toLowerCase()}-${tag}.png`), fullPage: true });
        a11y.push(...(await a11yViolations(page)).map((v) => `${screen} (${tag}): ${v}`));
        // Nothing cut off sideways: every column, card row and field is within the window. (Every
        // screen and size is checked before the assertions, so one run names every problem.)
        cutOff.push(...(await cutOffSideways(page)).map((p) => `${screen} (${tag}): ${p}`));
      }
      // The approve dialog: focus inside, passes axe; with an error showing, Approve stays in view.
      await go(page, "Requests");
      await page.getByRole("button", { name: /^Approve GITHUB_TOKEN/ }).click();
      const dialog = page.getByRole("dialog");
      await dialog.waitFor();
      await page.screenshot({ path: path.join(SHOTS, `approve-dialog-${tag}.png`) });
      await checkA11y(page, `approve dialog (${tag})`);
      await dialog.getByLabel("Secret to give").selectOption({ label: "New secret…" });
      await dialog.getByRole("button", { name: "Approve" }).click();
      await dialog.getByRole("alert").filter({ hasText: "Enter the value of GITHUB_TOKEN" }).waitFor();
      const button = await dialog.getByRole("button", { name: "Approve" }).boundingBox();
      const box = await dialog.boundingBox();
      assert.ok(button && box);
      assert.ok(
        button.y >= box.y && button.y + button.height <= box.y + box.height,
        `Approve inside the dialog (${tag})`,
      );
      assert.ok(button.y + button.height <= size.height, `Approve within the window (${tag})`);
      await page.screenshot({ path: path.join(SHOTS, `approve-dialog-error-${tag}.png`) });
      await checkA11y(page, `approve dialog with an error (${tag})`);
      await page.keyboard.press("Escape");
      await context.close();
    }
    assert.equal(cutOff.join("\n"), "", "content cut off sideways");
    assert.equal(a11y.join("\n"), "", "accessibility violations");
    // Signed out: the first-run screen with its one clear button. This Link runs where the person sees
    // no screen (no display, like a server reached through ssh -L): the code comes first.
    const signedOut = await newEnv();
    signedOut.env["SSH_CONNECTION"] = "203.0.113.5 50022 192.0.2.10 22";
    assert.equal(cliJson(signedOut, ["start", "--port", "0"], LinkStatusSchema).signInFlow, "device");
    for (const scheme of ["light", "dark"] as const) {
      // Each address works once (issue 16 item 8): one per page.
      const url = cliJson(signedOut, ["ui"], UiSchema).url;
      assert.ok(browser);
      const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 800 } });
      await watchConsole(context);
      const page = await context.newPage();
      await page.goto(url);
      await page.getByRole("button", { name: "Sign in with a code", exact: true }).waitFor();
      await page.getByTestId("sign-in-elsewhere").waitFor();
      assert.equal(
        await page.getByRole("button", { name: "Sign in", exact: true }).count(),
        0,
        "no browser sign-in that would redirect to the server's loopback",
      );
      await page.screenshot({ path: path.join(SHOTS, `sign-in-${scheme}.png`) });
      await checkA11y(page, `sign-in (${scheme})`);
      await context.close();
    }
    cli(signedOut, ["stop"]);
    process.stdout.write(`# screenshots in ${SHOTS}\n`);
  });

  it("first run: Sign in opens the authority's page in a new tab; creating the account there signs the window in", async () => {
    assert.ok(browser);
    const fresh = await newEnv();
    fresh.env["WAYLAND_DISPLAY"] = DESKTOP_DISPLAY;
    const started = cliJson(fresh, ["start", "--port", "0"], LinkStatusSchema);
    assert.equal(started.signInFlow, "browser");
    const url = cliJson(fresh, ["ui"], UiSchema).url;
    // No certificate exception: the sign-in pages come through the Link's own http origin (issue 15 item 3).
    const context = await browser.newContext();
    await watchConsole(context);
    const page = await context.newPage();
    await page.goto(url);
    const [tab] = await Promise.all([
      context.waitForEvent("page"),
      page.getByRole("button", { name: "Sign in", exact: true }).click(),
    ]);
    await page.getByText("Finish signing in in your browser").waitFor();
    await tab.getByLabel("Your name").waitFor();
    assert.ok(tab.url().startsWith(`http://127.0.0.1:${started.port}/signup`), tab.url());
    await tab.getByLabel("Your name").fill("Ada");
    await tab.getByLabel("Email").fill("ada@example.com");
    await tab.getByLabel(/Password/).fill("correct horse battery");
    await tab.getByRole("button", { name: "Create account" }).click();
    await tab.getByRole("heading", { name: "You're signed in" }).waitFor();
    // Styled like the authority's pages (one shared stylesheet), with the favicon.
    assert.notEqual(
      await tab.locator("main").evaluate((el) => getComputedStyle(el).backgroundColor),
      "rgba(0, 0, 0, 0)",
    );
    assert.match((await tab.locator('link[rel="icon"]').getAttribute("href")) ?? "", /^data:image\/svg\+xml,/);
    await tab.screenshot({ path: path.join(SHOTS, "signed-in-page.png") });
    // Back in the window: signed in, without a reload.
    await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
    const after = cliJson(fresh, ["status"], LinkStatusSchema);
    assert.equal(after.state, "ready");
    assert.equal(after.authority?.account, "oauth");
    await context.close();
    cli(fresh, ["stop"]);
  });

  it("several secrets asked together are one card: Approve all gives each its secret; one can be denied alone (issue 13 item 7)", async () => {
    for (const name of ["DEPLOY_KEY", "REGISTRY_TOKEN", "SLACK_HOOK"])
      assert.equal(cli(e, ["secrets", "set", name], `value-of-${name}\n`).code, 0);
    const { context, page } = await openUi();
    await go(page, "Requests");
    const deployer = agent("agent_deployer", "Deployer");
    const asked = deployer.getSecrets(["DEPLOY_KEY", "REGISTRY_TOKEN", "SLACK_HOOK"], { reason: "ship the release" });
    const card = page.getByRole("listitem").filter({ hasText: "wants 3 secrets" });
    await card.waitFor();
    assert.equal(
      await page.getByRole("listitem").filter({ hasText: "Deployer" }).filter({ hasText: "wants" }).count(),
      1,
      "one card for the three",
    );
    const text = await card.innerText();
    for (const v of ["DEPLOY_KEY", "REGISTRY_TOKEN", "SLACK_HOOK", "ship the release"])
      assert.ok(text.includes(v), `${v} on the card`);
    for (const v of ["DEPLOY_KEY", "REGISTRY_TOKEN"])
      assert.equal(await card.getByLabel(`Secret for ${v}`).inputValue(), v, "each variable with its secret");

    // Deny one alone, then Approve all (the rest) with the dialog's terms.
    await card.getByRole("button", { name: "Deny SLACK_HOOK for Deployer" }).click();
    await page.getByRole("listitem").filter({ hasText: "wants 2 secrets" }).waitFor();
    await page.getByRole("button", { name: "Approve all 2 for Deployer" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("radio", { name: /Until I revoke it/ }).check();
    // One proof for the whole card.
    await approveIn(dialog);
    const got = await asked;
    assert.deepEqual(
      Object.entries(got).map(([k, v]) => [k, "value" in v ? v.value : v.error.code]),
      [
        ["DEPLOY_KEY", "value-of-DEPLOY_KEY"],
        ["REGISTRY_TOKEN", "value-of-REGISTRY_TOKEN"],
        ["SLACK_HOOK", "denied"],
      ],
    );
    await page.getByRole("heading", { name: "No pending requests" }).waitFor();
    await context.close();
  });

  it("a request nobody decides disappears when it expires, without a reload; Approve and Deny work from the keyboard", async () => {
    assert.ok(browser);
    const short = await newEnv();
    const shortStatus = cliJson(short, ["start", "--port", "0", "--request-ttl", "4000"], LinkStatusSchema);
    cliJson(short, ["dev", "sign-in"], LinkStatusSchema);
    const url = cliJson(short, ["ui"], UiSchema).url;
    const context = await browser.newContext();
    await watchConsole(context);
    const page = await context.newPage();
    await page.goto(url);
    const impatient = createPiperClient({
      clientId: "agent_impatient",
      name: "Impatient Agent",
      linkUrl: shortStatus.url,
      fallbackToEnv: false,
    });
    clients.push(impatient);
    const waiting = impatient.getSecret("SHORT_LIVED", { reason: "will expire" }).catch((err: unknown) => err);
    const card = page.getByRole("listitem").filter({ hasText: "Impatient Agent" });
    await card.waitFor();
    // Keyboard: Tab reaches Approve… and Deny on the card.
    await page.getByRole("button", { name: "Approve SHORT_LIVED for Impatient Agent" }).focus();
    await page.keyboard.press("Tab");
    assert.equal(
      await page
        .getByRole("button", { name: "Deny SHORT_LIVED for Impatient Agent" })
        .evaluate((el) => el === document.activeElement),
      true,
    );
    await card.waitFor({ state: "detached", timeout: 15_000 });
    await page.getByRole("heading", { name: "No pending requests" }).waitFor();
    assert.equal(((await waiting) as { code?: string }).code, "timeout", "the agent hears the request expired");
    await context.close();
    cli(short, ["stop"]);
  });

  it("pyper-sdk's grant page on the Link names the request and brings the window to it", async () => {
    const { context, page } = await openUi();
    await go(page, "Settings");
    const pyper = agent("agent_pyper", "Pyper Agent");
    const waiting = pyper.getSecret("SLACK_TOKEN", { reason: "post the summary" }).catch((err: unknown) => err);
    await page
      .getByRole("navigation")
      .getByLabel(/pending/)
      .waitFor();

    const base = `http://127.0.0.1:${status.port}/grant`;
    const grant = await context.newPage();
    const ok = await grant.goto(
      `${base}?response_type=code&scope=manage_grants&client=agent_pyper&variable=SLACK_TOKEN`,
    );
    assert.equal(ok?.status(), 200);
    await grant.getByRole("heading", { name: "Pyper Agent is asking for SLACK_TOKEN" }).waitFor();
    // The window switched to Requests by itself, showing that request.
    await page.getByRole("heading", { level: 1, name: "Requests" }).waitFor();
    await page.getByRole("listitem").filter({ hasText: "post the summary" }).waitFor();

    // Wrong requests get error statuses (fetched, not opened: a page would log them as console errors).
    assert.equal(
      (
        await context.request.get(
          `${base}?response_type=code&scope=manage_grants&client=agent_nobody&variable=SLACK_TOKEN`,
        )
      ).status(),
      404,
    );
    assert.equal((await context.request.get(`${base}?client=agent_pyper`)).status(), 400);
    await page.getByRole("button", { name: "Deny SLACK_TOKEN for Pyper Agent" }).click();
    assert.ok((await waiting) instanceof PiperForbiddenError);
    await context.close();
  });

  it("follows the Link live: sign-out in Settings locks the Link; after Unlock the sign-in screen; signing in from the CLI brings the window back", async () => {
    const { context, page } = await openUi();
    await go(page, "Settings");
    const live = z
      .array(GrantViewSchema)
      .parse(JSON.parse(cli(e, ["grants", "--json"]).stdout))
      .filter((g) => g.endedAt === null).length;
    assert.ok(live > 0, "earlier tests left grants to end");
    await page.getByRole("button", { name: "Sign out" }).click();
    // Before the person confirms: what signing out ends, counted.
    await page
      .getByRole("dialog")
      .getByText(`the ${live === 1 ? "1 grant" : `${live} grants`} agents hold here end`, { exact: false })
      .waitFor();
    await page.getByRole("dialog").getByRole("button", { name: "Sign out" }).click();
    // Signing out takes the keys out of memory too: the window shows the Locked screen.
    await page.getByRole("heading", { name: "Piper Link is locked" }).waitFor();
    const field = page.getByLabel("Passphrase");
    await field.fill(TEST_PASSPHRASE);
    await field.press("Enter");
    await page.getByRole("button", { name: "Sign in", exact: true }).waitFor();
    // Signing in again from elsewhere (the CLI) brings the window back by itself.
    cliJson(e, ["dev", "sign-in", "--name", "e2e box"], LinkStatusSchema);
    await page.getByRole("navigation", { name: "Piper Link" }).waitFor();
    // Settings says who is signed in and this machine's name (issue 15 item 7).
    await go(page, "Settings");
    await page.getByText("Local user", { exact: true }).waitFor();
    await page.getByText(/^This machine: e2e box/).waitFor();
    await context.close();
  });
});

describe("the window's console (runs last)", { skip }, () => {
  it("no page of the window or of sign-in logged an error or a CSP violation", () => {
    assert.deepEqual(consoleProblems, []);
  });
});

/** Waits for the confirmation `text` in the window's polite live region. */
async function notice(page: Page, text: string): Promise<void> {
  await page.locator("[data-notices]").filter({ hasText: text }).waitFor();
  assert.equal(await page.locator("[data-notices]").getAttribute("aria-live"), "polite");
}

function pendingIds(): string[] {
  const r = cli(e, ["requests", "--json"]);
  return z
    .array(z.object({ id: z.string() }))
    .parse(JSON.parse(r.stdout))
    .map((x) => x.id);
}

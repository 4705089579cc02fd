/**
 * The browser window as an attacker of the same user drives it: `piper-link ui --print` (a
 * single-use code for the Link's own page), headless Chromium through playwright-core, and Approve
 * clicked on the attacker's own request. Then, from that page (the Link's own origin), the control
 * channel is called directly with the token from the control file, as page script could.
 *
 * usage: ui.ts BIN REQUEST_ID
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { platformEnv, readLinkEnv } from "../../src/main/core/runtime/env.js";
import { resolveLinkPaths } from "../../src/main/core/runtime/paths.js";
import { CONTROL_SUBPROTOCOL } from "../../src/shared/version.js";

const [bin = "", requestId = ""] = process.argv.slice(2);
const say = (line: unknown): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const printed = spawnSync(process.execPath, [bin, "ui", "--print", "--json"], { encoding: "utf8" });
const { url } = JSON.parse(printed.stdout) as { url: string };
const control = JSON.parse(
  fs.readFileSync(
    resolveLinkPaths(process.env["PIPER_LINK_PROFILE"] ?? "default", platformEnv(readLinkEnv(process.env))).controlFile,
    "utf8",
  ),
) as { token: string };

const browser = await chromium.launch({
  executablePath: process.env["PIPER_TEST_CHROMIUM"] ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  // The window, when built: the attacker's request card, Approve, and the dialog's Approve.
  let clicked = false;
  const approve = page.getByRole("button", { name: /^Approve/ }).first();
  if (
    await approve.waitFor({ state: "visible", timeout: 5000 }).then(
      () => true,
      () => false,
    )
  ) {
    await approve.click();
    const confirm = page
      .getByRole("dialog")
      .getByRole("button", { name: /^Approve/ })
      .last();
    if (
      await confirm.waitFor({ state: "visible", timeout: 3000 }).then(
        () => true,
        () => false,
      )
    ) {
      await confirm.click();
      clicked = true;
      await page.waitForTimeout(1500);
    }
  }
  const pageText = (
    await page
      .locator("body")
      .innerText()
      .catch(() => "")
  ).slice(0, 2000);
  // The same from page script on the Link's origin, without the window's help.
  const fromPage = await page.evaluate(
    async ([token, id, protocol]) =>
      new Promise<{ code: string | null; message: string | null; ok: boolean }>((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/v1/control`, protocol);
        ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
        ws.onmessage = (e) => {
          const m = JSON.parse(String(e.data)) as { type: string; id?: number; code?: string; message?: string };
          if (m.type === "authenticated")
            ws.send(
              JSON.stringify({
                type: "call",
                id: 1,
                method: "approveRequest",
                params: { requestId: id, scope: { kind: "until_revoked" }, binding: "client" },
              }),
            );
          else if (m.id === 1) resolve({ ok: m.type === "result", code: m.code ?? null, message: m.message ?? null });
        };
        ws.onerror = () => resolve({ ok: false, code: "socket_error", message: null });
      }),
    [control.token, requestId, CONTROL_SUBPROTOCOL] as const,
  );
  say({ url: url.replace(/#.*/, "#code=…"), clicked, pageText, fromPage });
} finally {
  await browser.close();
}

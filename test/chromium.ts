/**
 * Debian's Chromium through playwright-core (Playwright cannot download its own browser here).
 * Tests that need a real browser call `launchChromium()`; when /usr/bin/chromium is missing they
 * are skipped with that reason (CI installs it).
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM_PATH = process.env["PIPER_TEST_CHROMIUM"] ?? "/usr/bin/chromium";
export const CHROMIUM_SKIP = existsSync(CHROMIUM_PATH)
  ? false
  : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
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
}

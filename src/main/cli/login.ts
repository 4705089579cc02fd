/**
 * `piper-link login`: starts a sign-in in the running Link and waits for it. With a display it
 * opens the browser (PKCE); without one (SSH, a bare server) it goes straight to the device flow,
 * whose page the Link serves on its own port, so one SSH port forward of that port is all another
 * machine's browser needs. A browser sign-in that has not come back after a few seconds mentions
 * `--device`, so nobody waits forever on a machine whose browser they cannot see (issue 15 item 3).
 */
import os from "node:os";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { LoginStarted } from "../../shared/control.js";
import { hasDisplay, openBrowser } from "./browser.js";
import { callLink as call } from "./link-access.js";
import { ExitCode } from "./output.js";
import type { Runner } from "./commands.js";

/** How long a browser sign-in waits before it mentions `--device` (ms). */
export const DEVICE_HINT_AFTER_MS = 8000;

/** The hint printed when no browser callback has come after `DEVICE_HINT_AFTER_MS`. */
export const DEVICE_HINT =
  "Waiting for the browser… On a machine without a browser? Press Ctrl+C and run `piper-link login --device`.";

/**
 * The lines that tell the person how to finish a device sign-in. When the verification address is
 * on this machine's loopback (the Link serves the embedded authority's pages) and the person is
 * here over SSH, it also says how to reach it from their own machine: a port forward of that port.
 */
export function deviceInstructions(start: LoginStarted, env: NodeJS.ProcessEnv = process.env): string {
  const lines = [
    `To sign in, open ${start.verificationUri ?? ""} and enter the code ${start.userCode ?? ""}`,
    `(or open ${start.verificationUriComplete ?? ""})`,
  ];
  const port = loopbackPort(start.verificationUri);
  if (port !== null && !hasDisplay(env)) {
    lines.push(
      `From another computer, forward the port first: ssh -L ${port}:127.0.0.1:${port} ${os.userInfo().username}@${os.hostname()}`,
      `then open the address above in that computer's browser.`,
    );
  }
  lines.push("Waiting…");
  return `${lines.join("\n")}\n`;
}

/** The port of a http://127.0.0.1 address, or null for any other address. */
function loopbackPort(address: string | null): string | null {
  if (address === null) return null;
  try {
    const url = new URL(address);
    return url.protocol === "http:" && url.hostname === "127.0.0.1" ? url.port || "80" : null;
  } catch {
    return null;
  }
}

function parseMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("use a whole number of milliseconds.");
  return n;
}

export function addLoginCommand(program: Command, profile: () => string, run: Runner): void {
  program
    .command("login")
    .description("sign in once: in your browser, or with --device by entering a code on any device")
    .option("--device", "show a code to enter on another device (SSH, no browser)")
    .option("--no-browser", "print the sign-in address instead of opening a browser")
    .option("--json", "print the final status as JSON")
    // For tests and impatient people; hidden because the default suits everyone else.
    .addOption(
      new Option("--device-hint-after <ms>", "mention --device after this long without a browser callback")
        .argParser(parseMs)
        .default(DEVICE_HINT_AFTER_MS)
        .hideHelp(),
    )
    .action(async (o: { device?: boolean; browser: boolean; json?: boolean; deviceHintAfter: number }) => {
      await run(async (out) => {
        // Without a display there is no browser to open here: a code works from any device. An
        // explicit --no-browser means "print the browser address", so it keeps the browser flow.
        const noDisplay = o.device !== true && o.browser && !hasDisplay();
        if (noDisplay)
          process.stderr.write("No display here (an SSH session or a server), so sign in with a code instead.\n");
        const start = await call(profile(), "loginStart", { device: o.device === true || noDisplay });
        let hint: NodeJS.Timeout | undefined;
        if (start.kind === "device") {
          process.stderr.write(deviceInstructions(start));
        } else {
          const opened = o.browser && openBrowser(start.authorizeUrl ?? "");
          process.stderr.write(
            `${opened ? "Opening your browser to sign in." : "Open this address to sign in:"}\n${start.authorizeUrl ?? ""}\nWaiting…\n`,
          );
          hint = setTimeout(() => process.stderr.write(`${DEVICE_HINT}\n`), o.deviceHintAfter);
          hint.unref();
        }
        try {
          const status = await call(profile(), "loginWait", { loginId: start.loginId, timeoutMs: 10 * 60_000 });
          out.result(
            status,
            `Signed in. This machine is instance ${status.instanceIdRedacted ?? ""}; agents can find it now.`,
          );
        } finally {
          clearTimeout(hint);
        }
        return ExitCode.ok;
      }, o.json === true);
    });
}

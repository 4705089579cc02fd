/**
 * `piper-link pyper` (issue 15 item 6): how to point a pyper-sdk 0.7 agent at this Link. Prints
 * PiperClient's settings as a Python snippet — the three https URLs on the Link's pyper port, the
 * context URL and grant page on its loopback port — with a `requests.Session` that trusts the
 * Link's self-signed certificate for `https://127.0.0.1:<pyper port>/` only. pyper-sdk takes a
 * `requests_session`, so nothing replaces requests' CA store (`REQUESTS_CA_BUNDLE` would make every
 * other HTTPS call of the agent fail verification). `--json` gives the settings, `--cert-path` only
 * the certificate's path.
 */
import type { Command } from "commander";
import { LinkError } from "../../shared/errors.js";
import { pyperSettings, type PyperSettings } from "../../shared/pyper.js";
import { callLink } from "./link-access.js";
import { ExitCode, type Output } from "./output.js";

/** A Python string literal for `text` (JSON's escapes are valid Python for these paths and URLs). */
function py(text: string): string {
  return JSON.stringify(text);
}

/** The snippet an agent author pastes: a session scoped to the Link's origin, then PiperClient. */
export function pythonSnippet(s: PyperSettings): string {
  return [
    "# pyper-sdk settings for this Piper Link (printed by `piper-link pyper`).",
    "import requests",
    "from requests.adapters import HTTPAdapter",
    "from piper_sdk.client import PiperClient",
    "",
    `PIPER_LINK_CERT = ${py(s.certFile)}`,
    "",
    "class TrustPiperLink(HTTPAdapter):",
    `    """Verifies ${s.pyperOrigin} against Piper Link's own certificate; every other URL keeps the usual CA store."""`,
    "    def send(self, request, **kwargs):",
    '        kwargs["verify"] = PIPER_LINK_CERT',
    "        return super().send(request, **kwargs)",
    "",
    "session = requests.Session()",
    `session.mount(${py(s.pyperOrigin)}, TrustPiperLink())`,
    "",
    "piper = PiperClient(",
    '    client_id="my-agent",  # your agent\'s client ID: the name you approve in Piper Link',
    `    resolve_mapping_url=${py(s.resolveMappingUrl)},`,
    `    get_scoped_url=${py(s.getScopedUrl)},`,
    `    exchange_secret_url=${py(s.exchangeSecretUrl)},`,
    `    piper_link_service_url=${py(s.linkServiceUrl)},`,
    `    piper_ui_grant_page_url=${py(s.grantPageUrl)},`,
    "    requests_session=session,",
    ")",
    'openai_key = piper.get_secret("OPENAI_API_KEY", fetch_raw_secret=True)["value"]',
  ].join("\n");
}

/** Adds `pyper` to the program; it reads the running Link's status over the control channel. */
export function addPyperCommand(
  program: Command,
  profile: () => string,
  run: (job: (out: Output) => Promise<number>, json: boolean) => Promise<void>,
): void {
  program
    .command("pyper")
    .description("print the settings that point a pyper-sdk (Python) agent at this Link")
    .option("--json", "print the settings as JSON")
    .option("--cert-path", "print only the path of the Link's certificate for the pyper-sdk endpoints")
    .action(async (o: { json?: boolean; certPath?: boolean }) => {
      await run(async (out) => {
        const status = await callLink(profile(), "status", {});
        const endpoints = status.pyper ?? null;
        if (endpoints === null)
          throw new LinkError(
            "not_running",
            "This Piper Link does not serve the pyper-sdk endpoints (it predates them, or they failed to start; see its log).",
          );
        const settings = pyperSettings(status.port, endpoints.port, endpoints.certFile);
        if (o.certPath === true) out.result({ certFile: settings.certFile }, settings.certFile);
        else out.result(settings, pythonSnippet(settings));
        return ExitCode.ok;
      }, o.json === true);
    });
}

/**
 * `piper-link service install|uninstall|status`: run the headless Link as a systemd user service, so
 * agents find it after every login (and, with `loginctl enable-linger`, after boot). The desktop app
 * has its own "Start at login" setting instead.
 */
import { spawnSync } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import type { KeychainBackend } from "../../shared/control.js";
import { LinkError } from "../../shared/errors.js";
import { DAEMON_NODE_FLAGS } from "../core/runtime/daemon-flags.js";
import { readFileOrNull, writeFileAtomic } from "../core/runtime/files.js";
import { chosenBackend } from "../core/runtime/keychain-choice.js";
import { PASSPHRASE_FILE_ENV, platformEnv } from "../core/runtime/env.js";
import { cliEnv } from "./env.js";
import { resolveLinkPaths } from "../core/runtime/paths.js";
import { serviceName, userUnit, userUnitDir } from "../core/runtime/service-unit.js";
import type { Runner } from "./commands.js";
import { ExitCode } from "./output.js";

/** The command that starts this install's daemon: this Node with the daemon's flags, and bin/piper-link.js. */
function cliCommand(): string[] {
  return [
    process.execPath,
    ...DAEMON_NODE_FLAGS,
    path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/piper-link.js"),
  ];
}

function systemctl(...args: string[]): { ok: boolean; output: string } {
  const r = spawnSync("systemctl", ["--user", ...args], { encoding: "utf8", timeout: 20_000 });
  if (r.error)
    return {
      ok: false,
      output: (r.error as NodeJS.ErrnoException).code === "ENOENT" ? "systemctl is not installed" : r.error.message,
    };
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

/** The profile's unit: its name, its file, and whether that file exists. Linux only. */
async function unitOf(profile: string): Promise<{ name: string; file: string; installed: boolean }> {
  if (process.platform !== "linux") {
    throw new LinkError(
      "not_implemented",
      "`piper-link service` manages a systemd user service (Linux). On macOS and Windows use the desktop app's Start at login setting.",
    );
  }
  const name = serviceName(profile);
  const file = path.join(userUnitDir(cliEnv().configHome), name);
  return { name, file, installed: (await readFileOrNull(file)) !== null };
}

/** What a service without a passphrase file means for the person. */
export const SERVICE_STARTS_LOCKED =
  "The service starts locked (it has no terminal to ask your passphrase on): after each start, unlock it with `piper-link unlock` at a terminal or in its window.";

/** How the service will open the profile's keychain: what the unit must carry, and what the person must still do. */
interface ServiceKeychain {
  backend: KeychainBackend;
  /** The file keychain's passphrase file written into the unit (absolute), or null. */
  passphraseFile: string | null;
  environment: Record<string, string>;
  /** Sentences for the person (stderr, and `warnings` under --json); empty when nothing is missing. */
  warnings: string[];
}

/**
 * A service has no terminal to ask for the file keychain's passphrase: without a source it would stop
 * at every start with a keychain error (exit 5). A passphrase file named in
 * PIPER_LINK_KEYCHAIN_PASSPHRASE_FILE at install time is written into the unit (its path, never the
 * passphrase); otherwise the person is told how to give one.
 */
async function serviceKeychain(profile: string): Promise<ServiceKeychain> {
  const backend = await chosenBackend(resolveLinkPaths(profile, platformEnv(cliEnv())).dataDir);
  // The OS keychain opens without a passphrase, but the vault does not: the service starts locked and
  // the person unlocks it after each start (a passphrase file would make it unprotected at rest).
  if (backend !== "file") return { backend, passphraseFile: null, environment: {}, warnings: [SERVICE_STARTS_LOCKED] };
  const given = cliEnv().vars[PASSPHRASE_FILE_ENV];
  if (given !== undefined && given !== "") {
    const passphraseFile = path.resolve(given);
    const warnings: string[] = [];
    try {
      await fs.access(passphraseFile, fsConstants.R_OK);
    } catch {
      warnings.push(
        `The keychain passphrase file ${passphraseFile} (${PASSPHRASE_FILE_ENV}) cannot be read now; the service will stop with a keychain error until it can.`,
      );
    }
    return { backend, passphraseFile, environment: { [PASSPHRASE_FILE_ENV]: passphraseFile }, warnings };
  }
  return {
    backend,
    passphraseFile: null,
    environment: {},
    warnings: [
      `This profile keeps its keys in an encrypted file (--keychain file) and a service has no terminal to ask for its passphrase, so the service will stop with a keychain error (exit 5). Put the passphrase in a file only you can read (chmod 600) and install again with ${PASSPHRASE_FILE_ENV}=/path/to/that/file piper-link service install; the unit then names that file.`,
    ],
  };
}

export function addServiceCommand(program: Command, profile: () => string, run: Runner): void {
  const service = program
    .command("service")
    .description("run the headless Link as a systemd user service (starts with your session)");
  service
    .command("install")
    .description("write the systemd user unit and enable and start it")
    .option("--authority <where>", "passed to `start` (embedded by default)")
    .option("--no-start", "only write the unit file")
    .option("--json", "print JSON")
    .action(async (o: { authority?: string; start: boolean; json?: boolean }) => {
      await run(async (out) => {
        const { name, file } = await unitOf(profile());
        const keychain = await serviceKeychain(profile());
        await writeFileAtomic(
          file,
          userUnit({
            profile: profile(),
            command: cliCommand(),
            authority: o.authority,
            environment: keychain.environment,
          }),
        );
        for (const warning of keychain.warnings) out.warn(`Warning: ${warning}`);
        const facts = {
          unit: file,
          keychain: keychain.backend,
          passphraseFile: keychain.passphraseFile,
          warnings: keychain.warnings,
        };
        if (!o.start) {
          out.result({ ...facts, enabled: false }, [
            `Wrote ${file}.`,
            `Start it with: systemctl --user enable --now ${name}`,
          ]);
          return ExitCode.ok;
        }
        for (const step of [["daemon-reload"], ["enable", "--now", name]]) {
          const r = systemctl(...step);
          if (!r.ok) {
            throw new LinkError(
              "service_failed",
              `Wrote ${file}, but \`systemctl --user ${step.join(" ")}\` failed: ${r.output || "no output"}. Without a systemd user session (containers, some SSH setups), start the Link with \`piper-link start\` instead.`,
            );
          }
        }
        out.result({ ...facts, enabled: true }, [
          `Installed and started ${name} (${file}).`,
          "Piper Link now starts with your session. To start it at boot without logging in: loginctl enable-linger",
        ]);
        return ExitCode.ok;
      }, o.json === true);
    });
  service
    .command("uninstall")
    .description("stop and disable the service and remove its unit file")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const { name, file, installed: existed } = await unitOf(profile());
        // Best effort: the unit may never have been enabled, or there may be no user session.
        const disabled = systemctl("disable", "--now", name).ok;
        await fs.rm(file, { force: true });
        if (existed) systemctl("daemon-reload");
        out.result(
          { unit: file, removed: existed, disabled },
          existed ? `Removed ${name}${disabled ? " (stopped and disabled)" : ""}.` : `${name} was not installed.`,
        );
        return ExitCode.ok;
      }, o.json === true);
    });
  service
    .command("status")
    .description("show whether the service is installed and running")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      await run(async (out) => {
        const { name, file, installed } = await unitOf(profile());
        if (!installed) {
          out.result(
            { unit: file, installed, active: "not installed" },
            `${name} is not installed (piper-link service install).`,
          );
          return ExitCode.ok;
        }
        // `systemctl is-active` prints a unit state (systemctl(1)); anything else is systemd's own
        // problem (no user session bus, ...), reported apart from the state.
        const answer = systemctl("is-active", name).output;
        const state = answer.split("\n")[0] ?? "";
        const known = /^(active|reloading|inactive|failed|activating|deactivating|maintenance|refreshing)$/.test(state);
        const active = known ? state : "unknown";
        const problem = known ? null : answer || "systemctl gave no answer";
        out.result(
          { unit: file, installed, active, ...(problem === null ? {} : { problem }) },
          problem === null ? `${name}: ${active} (${file})` : `${name}: state unknown (${problem}) (${file})`,
        );
        return ExitCode.ok;
      }, o.json === true);
    });
}

/**
 * Which keychain a profile uses and how the encrypted file's passphrase is had. The choice is made
 * explicitly (`piper-link start --keychain os|file`, or accepted when `npm start` offers the file on
 * a machine without a Secret Service) and remembered in the profile's settings file, so later starts
 * and the CLI commands that touch the keychain open the same one. Never a silent fallback.
 */
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { KeychainBackend } from "../../../shared/control.js";
import { LinkError } from "../../../shared/errors.js";
import { createFileKeychainStore, FILE_KEYCHAIN_NAME } from "./file-keychain.js";
import { PASSPHRASE_FILE_ENV, type LinkEnv } from "./env.js";
import { createKeychainStore, keychainService, type KeychainStore } from "./keychain.js";
import { readKeychainChoice } from "./settings.js";

/** Reads the passphrase file (one trailing newline ignored); `keychain_locked` when unreadable or empty. */
export async function readPassphraseFile(file: string): Promise<string> {
  let value: string;
  try {
    value = (await fs.readFile(file, "utf8")).replace(/\r?\n$/, "");
  } catch (err) {
    throw new LinkError(
      "keychain_locked",
      `Cannot read the passphrase file ${file} (${PASSPHRASE_FILE_ENV}): ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (value.length === 0) throw new LinkError("keychain_locked", `The passphrase file ${file} is empty.`);
  return value;
}

/**
 * Asks for a line on the terminal without echoing it. Resolves with what was typed (without the
 * newline); rejects with `cancelled` (default `keychain_locked`) on Ctrl+C or Ctrl+D, or when
 * `input` is not a terminal.
 */
export function promptHidden(
  question: string,
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
  cancelled: (noTerminal: boolean) => LinkError = (noTerminal) =>
    new LinkError(
      "keychain_locked",
      noTerminal
        ? "No terminal to ask for the keychain passphrase on."
        : "No passphrase given; the keychain file stays locked.",
    ),
): Promise<string> {
  if (!input.isTTY) return Promise.reject(cancelled(true));
  return new Promise((resolve, reject) => {
    let typed = "";
    const finish = (err: LinkError | null): void => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
      if (err === null) resolve(typed);
      else reject(err);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish(null);
        if (ch === "\u0003" || ch === "\u0004") return finish(cancelled(false));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    // Echo off before the question shows, so nothing typed the moment it appears is echoed.
    input.setRawMode(true);
    output.write(question);
    input.resume();
    input.on("data", onData);
  });
}

/** How many times a new passphrase may be mistyped in its confirmation before giving up. */
const CONFIRM_TRIES = 3;

/**
 * Asks for a passphrase that will create a keychain file: twice, and again when the two differ (a
 * typo here would lock the person out of every key in the file). Rejects with `keychain_locked`
 * after CONFIRM_TRIES mismatches.
 */
export async function promptNewPassphrase(
  ask: (question: string) => Promise<string> = (q) => promptHidden(q),
  output: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  for (let i = 0; i < CONFIRM_TRIES; i++) {
    const first = await ask("Choose a keychain passphrase: ");
    if ((await ask("Repeat it: ")) === first) return first;
    output.write("The two passphrases differ. Try again.\n");
  }
  throw new LinkError("keychain_locked", "The passphrases did not match; no keychain file was created.");
}

/**
 * The passphrase source for the file keychain when no Link holds it (a CLI command on a stopped
 * Link): `file` (`LinkEnv.passphraseFile`, named by `PIPER_LINK_PASSPHRASE_FILE`) when not null, else a hidden prompt when stdin is a
 * terminal (asked twice when `newFile`, the keychain file it will open, does not exist yet);
 * otherwise `keychain_locked` with the ways to give one.
 */
export function passphraseSource(
  file: string | null,
  interactive: boolean = process.stdin.isTTY,
  newFile: string | null = null,
): () => Promise<string> {
  let asked: Promise<string> | null = null;
  const ask = async (): Promise<string> => {
    if (file !== null) return readPassphraseFile(file);
    if (!interactive)
      throw new LinkError(
        "keychain_locked",
        `The keychain file is locked: run this at a terminal to be asked for the passphrase, or name a file holding it in ${PASSPHRASE_FILE_ENV}.`,
      );
    const value =
      newFile !== null && !existsSync(newFile)
        ? await promptNewPassphrase()
        : await promptHidden("Piper Link passphrase: ");
    if (value.length === 0) throw new LinkError("keychain_locked", "The passphrase is empty.");
    return value;
  };
  return () => {
    // Asked once per process; a failed ask may be retried.
    asked ??= ask().catch((err: unknown) => {
      asked = null;
      throw err;
    });
    return asked;
  };
}

export interface OpenKeychainOptions {
  profile: string;
  dataDir: string;
  /** The Link's environment (the OS keychain's helper inherits it; the passphrase file it names). */
  env: LinkEnv;
  /** The backend to use; by default the one remembered for the profile, else the OS keychain. */
  backend?: KeychainBackend | undefined;
  /** The file keychain's passphrase (default: `passphraseSource(env.passphraseFile)`). */
  passphrase?: () => Promise<string>;
}

/** The remembered backend of a profile, or `os` when none was chosen. */
export async function chosenBackend(dataDir: string): Promise<KeychainBackend> {
  return (await readKeychainChoice(dataDir)) ?? "os";
}

/** Opens the profile's keychain: the given backend, else the remembered one, else the OS keychain. */
export async function openKeychain(options: OpenKeychainOptions): Promise<KeychainStore> {
  const backend = options.backend ?? (await chosenBackend(options.dataDir));
  if (backend === "os") return createKeychainStore({ profile: options.profile, env: options.env });
  return createFileKeychainStore({
    dataDir: options.dataDir,
    service: keychainService(options.profile),
    passphrase:
      options.passphrase ??
      passphraseSource(options.env.passphraseFile, process.stdin.isTTY, path.join(options.dataDir, FILE_KEYCHAIN_NAME)),
  });
}

/** What `npm start` knows when it decides whether to offer the file keychain. */
export interface KeychainOfferSituation {
  platform: NodeJS.Platform;
  /** stdin and stdout are a terminal: someone can answer. */
  interactive: boolean;
  /** A Secret Service answered a probe on the session bus. */
  secretServiceAnswers: boolean;
  /** The backend remembered for the profile, if one was chosen. */
  remembered: KeychainBackend | null;
  /** `npm start`'s arguments (`--keychain` there is an explicit choice). */
  argv: readonly string[];
}

/** The question `npm start` asks, word for word (issue 15 item 1). */
export const KEYCHAIN_QUESTION = "No OS keychain here. Use an encrypted file protected by a passphrase? [y/N] ";

/**
 * Whether `npm start` should offer the encrypted-file keychain: only on an interactive terminal, on
 * Linux (macOS and Windows always have one), when no Secret Service answers and no backend was
 * chosen before or on the command line. "ask": put `KEYCHAIN_QUESTION`; "none": start as chosen.
 */
export function keychainOffer(s: KeychainOfferSituation): "ask" | "none" {
  if (s.platform !== "linux" || s.argv.includes("--keychain") || s.remembered !== null || s.secretServiceAnswers)
    return "none";
  return s.interactive ? "ask" : "none";
}

/**
 * The person's settings (notifications, start at login), kept as a private JSON file in the data
 * directory, which also remembers the keychain backend chosen with `start --keychain` (not a
 * setting the window may change, so it is read and written only by the functions for it). A missing
 * or unreadable file means the defaults; a write is atomic, so a crash never leaves half a file.
 */
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import {
  DEFAULT_SETTINGS,
  KeychainBackendSchema,
  LinkSettingsSchema,
  type KeychainBackend,
  type LinkSettings,
} from "../../../shared/control.js";
import { readFileOrNull, writeFileAtomic } from "./files.js";

export interface SettingsStore {
  get(): LinkSettings;
  load(): Promise<LinkSettings>;
  update(change: { [K in keyof LinkSettings]?: LinkSettings[K] | undefined }): Promise<LinkSettings>;
}

const settingsFile = (dataDir: string): string => path.join(dataDir, "settings.json");
const StoredChoiceSchema = z.object({ keychain: KeychainBackendSchema });

/** The keychain backend remembered for the profile whose data directory is `dataDir`, or null. */
export async function readKeychainChoice(dataDir: string): Promise<KeychainBackend | null> {
  const text = await readFileOrNull(settingsFile(dataDir)).catch(() => null);
  if (text === null) return null;
  try {
    const parsed = StoredChoiceSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.keychain : null;
  } catch {
    return null;
  }
}

/** Remembers `backend` in the settings file, keeping the settings it holds. */
export async function rememberKeychainChoice(dataDir: string, backend: KeychainBackend): Promise<void> {
  const text = await readFileOrNull(settingsFile(dataDir)).catch(() => null);
  let settings: LinkSettings = { ...DEFAULT_SETTINGS };
  if (text !== null) {
    try {
      settings = LinkSettingsSchema.parse({ ...DEFAULT_SETTINGS, ...(JSON.parse(text) as object) });
    } catch {
      // An unreadable file gets the defaults, as `load` would.
    }
  }
  await writeFileAtomic(settingsFile(dataDir), `${JSON.stringify({ ...settings, keychain: backend }, null, 2)}\n`);
}

export function createSettingsStore(dataDir: string, log: Logger): SettingsStore {
  const file = settingsFile(dataDir);
  let current: LinkSettings = { ...DEFAULT_SETTINGS };
  let writing: Promise<unknown> = Promise.resolve();
  return {
    get: () => current,
    async load() {
      const text = await readFileOrNull(file).catch(() => null);
      if (text === null) return current;
      try {
        current = LinkSettingsSchema.parse({ ...DEFAULT_SETTINGS, ...(JSON.parse(text) as object) });
      } catch (err) {
        log.warn(
          { file, err: err instanceof Error ? err.message : String(err) },
          "settings file unreadable; using defaults",
        );
      }
      return current;
    },
    update(change) {
      const defined = Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined));
      const next = LinkSettingsSchema.parse({ ...current, ...defined });
      // Writes are serialized so the file always ends with the last update.
      // The remembered keychain choice is not a setting, but lives in the same file: keep it.
      const write = writing.then(async () => {
        const keychain = await readKeychainChoice(dataDir);
        await writeFileAtomic(file, `${JSON.stringify(keychain === null ? next : { ...next, keychain }, null, 2)}\n`);
      });
      writing = write.catch(() => undefined);
      return write.then(() => {
        current = next;
        return next;
      });
    },
  };
}

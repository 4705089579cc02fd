/**
 * The person's settings (notifications, start at login), kept as a private JSON file in the data
 * directory. A missing or unreadable file means the defaults; a write is atomic, so a crash never
 * leaves half a file.
 */
import path from "node:path";
import type { Logger } from "pino";
import { DEFAULT_SETTINGS, LinkSettingsSchema, type LinkSettings } from "../../../shared/control.js";
import { readFileOrNull, writeFileAtomic } from "./files.js";

export interface SettingsStore {
  get(): LinkSettings;
  load(): Promise<LinkSettings>;
  update(change: { [K in keyof LinkSettings]?: LinkSettings[K] | undefined }): Promise<LinkSettings>;
}

export function createSettingsStore(dataDir: string, log: Logger): SettingsStore {
  const file = path.join(dataDir, "settings.json");
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
        log.warn({ file, err: err instanceof Error ? err.message : String(err) }, "settings file unreadable; using defaults");
      }
      return current;
    },
    update(change) {
      const defined = Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined));
      const next = LinkSettingsSchema.parse({ ...current, ...defined });
      // Writes are serialized so the file always ends with the last update.
      const write = writing.then(() => writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`));
      writing = write.catch(() => undefined);
      return write.then(() => {
        current = next;
        return next;
      });
    },
  };
}

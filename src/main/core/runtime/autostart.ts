/**
 * Starting Piper Link with the person's session on Linux desktops: an XDG autostart entry
 * (`~/.config/autostart/piper-link.desktop`, freedesktop "Desktop Application Autostart"). macOS and
 * Windows use Electron's login item setting instead, applied by the shell.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "./files.js";

/** The autostart entry under `configHome` (`LinkEnv.configHome`: `XDG_CONFIG_HOME`, else `~/.config`). */
export function autostartFile(configHome: string): string {
  return path.join(configHome, "autostart", "piper-link.desktop");
}

/** Quotes one argument for a desktop entry's Exec key (freedesktop Desktop Entry spec, "Exec"). */
function quoteExec(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/(["`$\\])/g, "\\$1")}"`;
}

export function autostartEntry(command: string[]): string {
  return [
    "[Desktop Entry]",
    "Type=Application",
    "Name=Piper Link",
    "Comment=Gives your AI agents your secrets safely, with your approval",
    `Exec=${command.map(quoteExec).join(" ")}`,
    "Icon=piper-link",
    "Terminal=false",
    "X-GNOME-Autostart-enabled=true",
    "",
  ].join("\n");
}

/** Writes or removes the autostart entry; returns the file it manages. */
export async function setXdgAutostart(enabled: boolean, command: string[], file: string): Promise<string> {
  if (enabled) await writeFileAtomic(file, autostartEntry(command));
  else await fs.rm(file, { force: true });
  return file;
}

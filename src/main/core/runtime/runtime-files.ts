/**
 * The files a running Link publishes beside each other in its runtime directory (DESIGN.md
 * section 3): the discovery file SDKs read (`link.json`) and the control file the local CLI reads
 * (`control.json`, holding the per-start control token). Both are written from their shared
 * schemas' types, mode 0600, atomically, and removed on clean exit only by the process that wrote them.
 */
import type { ControlFile } from "../../../shared/control.js";
import { DiscoveryFileSchema, type DiscoveryFile } from "../../../shared/discovery.js";
import { LINK_VERSION } from "../../../shared/version.js";
import { readFileOrNull, removeIfOwned, writeFileAtomic } from "./files.js";
import type { LinkPaths } from "./paths.js";

/** The agent channel's address on `port`. */
export function agentChannelUrl(port: number): string {
  return `ws://127.0.0.1:${port}/v1/link`;
}

/** The control channel's address on `port`. */
export function controlChannelUrl(port: number): string {
  return `ws://127.0.0.1:${port}/v1/control`;
}

/** Publishes the discovery and control files of a Link listening on `port`. */
export async function writeRuntimeFiles(
  paths: LinkPaths,
  link: { port: number; controlToken: string; startedAt: Date },
): Promise<void> {
  const discovery: DiscoveryFile = {
    url: agentChannelUrl(link.port),
    pid: process.pid,
    version: LINK_VERSION,
    startedAt: link.startedAt.toISOString(),
  };
  const control: ControlFile = { url: controlChannelUrl(link.port), token: link.controlToken, pid: process.pid };
  await writeFileAtomic(paths.discoveryFile, `${JSON.stringify(discovery, null, 2)}\n`);
  await writeFileAtomic(paths.controlFile, `${JSON.stringify(control)}\n`);
}

/** Removes both files if this process wrote them (a newer Link's files are left alone). */
export async function removeRuntimeFiles(paths: LinkPaths): Promise<void> {
  await removeIfOwned(paths.discoveryFile, process.pid);
  await removeIfOwned(paths.controlFile, process.pid);
}

/** The sentence shown when another Link (process `pid`) holds the lock: its address if it published one. */
export async function describeRunningLink(paths: LinkPaths, pid: number): Promise<string> {
  const text = await readFileOrNull(paths.discoveryFile);
  let url: string | null = null;
  if (text !== null) {
    try {
      const parsed = DiscoveryFileSchema.safeParse(JSON.parse(text));
      url = parsed.success ? parsed.data.url : null;
    } catch {
      url = null;
    }
  }
  return `Piper Link is already running (pid ${pid}${url ? `, ${url}` : ""}). Use \`piper-link status\` to see it or \`piper-link stop\` to stop it.`;
}

/**
 * The authority's entry in an Electron utility process (the desktop app's embedded authority,
 * DESIGN.md section 2). The shell passes `--piper-authority` before the command, because the shape
 * of `process.argv` in a utility process is Electron's to choose. A utility process has no stdin:
 * the keys (`--keys-on-stdin`) arrive as the first message on its parent port.
 */
import { authorityArgv } from "../shared/authority-process.js";
import { runAuthority } from "./main.js";

/** Electron's `process.parentPort`, seen structurally (this module does not import Electron). */
interface ParentPort {
  once(event: "message", listener: (message: { data: unknown }) => void): void;
}
function isParentPort(value: unknown): value is ParentPort {
  return typeof value === "object" && value !== null && "once" in value && typeof value.once === "function";
}

// Listening at once: a message that arrives before a listener would be lost.
const port: unknown = Reflect.get(process, "parentPort");
const firstMessage: Promise<string> = isParentPort(port)
  ? new Promise((resolve, reject) =>
      port.once("message", (m) =>
        typeof m.data === "string"
          ? resolve(m.data)
          : reject(new Error("The keys message from the app is not a string.")),
      ),
    )
  : Promise.reject(new Error("No parent port: this entry runs only in an Electron utility process."));
// Only awaited with --keys-on-stdin; an unawaited rejection must not end the process otherwise.
firstMessage.catch(() => undefined);

runAuthority(authorityArgv(process.argv), () => firstMessage);

/**
 * The authority's entry in an Electron utility process (the desktop app's embedded authority,
 * DESIGN.md section 2). The shell passes `--piper-authority` before the command, because the shape
 * of `process.argv` in a utility process is Electron's to choose.
 */
import { runAuthority } from "./main.js";

const at = process.argv.indexOf("--piper-authority");
runAuthority(at >= 0 ? process.argv.slice(at + 1) : process.argv.slice(2));

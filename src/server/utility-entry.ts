/**
 * The authority's entry in an Electron utility process (the desktop app's embedded authority,
 * DESIGN.md section 2). The shell passes `--piper-authority` before the command, because the shape
 * of `process.argv` in a utility process is Electron's to choose.
 */
import { authorityArgv } from "../shared/authority-process.js";
import { runAuthority } from "./main.js";

runAuthority(authorityArgv(process.argv));

#!/usr/bin/env node
// The installed `piper-link` command: runs the compiled CLI (npm run build:node makes dist/).
import { existsSync } from "node:fs";

const entry = new URL("../dist/main/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("piper-link: not built yet. Run `npm run build:node` (npm install does it for you).\n");
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);

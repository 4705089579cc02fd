// Builds the Electron shell: main (src/main/app, with the core bundled in), the sandboxed preload,
// and the React renderer. The headless daemon and CLI are compiled by tsc instead (npm run build:node).
import react from "@vitejs/plugin-react";
import { defineConfig } from "electron-vite";

export default defineConfig({
  main: {
    // The embedded authority runs in a utility process from its own entry (out/main/authority.js).
    build: {
      outDir: "out/main",
      rolldownOptions: { input: { index: "src/main/app/index.ts", authority: "src/server/utility-entry.ts" } },
    },
  },
  preload: {
    // Sandboxed preloads cannot require node_modules, so everything is bundled into one file.
    build: {
      outDir: "out/preload",
      externalizeDeps: false,
      isolatedEntries: true,
      rolldownOptions: { input: { index: "src/preload/index.ts" }, output: { format: "cjs" } },
    },
  },
  renderer: {
    root: "src/renderer",
    // Relative asset paths: the same build loads from file:// in Electron and from /ui/ in a browser.
    base: "./",
    plugins: [react()],
    build: { outDir: "out/renderer", minify: true, rolldownOptions: { input: { index: "src/renderer/index.html" } } },
  },
});

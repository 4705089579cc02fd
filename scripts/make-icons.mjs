// Generates every icon the app ships from one source, assets/icon.svg: the app icon in the sizes
// each platform needs (PNG set for Linux, .icns for macOS, .ico for Windows) and the tray images
// (normal, pending, signed-out; macOS template variants that follow the menu bar's colour).
// Run `npm run icons` after changing the SVG; the outputs are committed so packaging needs no tools.
//   node scripts/make-icons.mjs [outDir]   (default: assets)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Resvg } from "@resvg/resvg-js";
import png2icons from "png2icons";

const root = path.resolve(import.meta.dirname, "..");
const out = path.resolve(process.argv[2] ?? path.join(root, "assets"));
const source = readFileSync(path.join(root, "assets", "icon.svg"), "utf8");

function render(svg, size) {
  return new Resvg(svg, { fitTo: { mode: "width", value: size }, font: { loadSystemFonts: false } }).render().asPng();
}

/** The glyph (the "P" stroke) of the source icon, reused for the tray. */
const glyph = /<path d="([^"]+)"/.exec(source)?.[1];
if (!glyph) throw new Error("assets/icon.svg has no <path d=…> glyph");

const APP_SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024];
mkdirSync(path.join(out, "icons"), { recursive: true });
for (const size of APP_SIZES) writeFileSync(path.join(out, "icons", `${size}x${size}.png`), render(source, size));
const big = render(source, 1024);
writeFileSync(path.join(out, "icon.png"), render(source, 512));
writeFileSync(path.join(out, "icon.icns"), png2icons.createICNS(big, png2icons.BICUBIC, 0));
writeFileSync(path.join(out, "icon.ico"), png2icons.createICO(big, png2icons.BICUBIC, 0, false, true));

const BADGE = `<circle cx="50" cy="14" r="11" fill="#f59e0b" stroke="#fff" stroke-width="3"/>`;
const TEMPLATE_BADGE = `<circle cx="50" cy="14" r="10" fill="#000"/>`;
function trayColour(state) {
  const fill = state === "signed-out" ? "#8a8f98" : "#1f4fd1";
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
  <rect x="2" y="2" width="60" height="60" rx="14" fill="${fill}"/>
  <path d="${glyph}" fill="none" stroke="#fff" stroke-width="7" stroke-linecap="round" stroke-linejoin="round"/>
  ${state === "pending" ? BADGE : ""}
</svg>`;
}
function trayTemplate(state) {
  // Template images use only the alpha channel; signed-out is drawn faint.
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
  <path d="${glyph}" fill="none" stroke="#000" stroke-opacity="${state === "signed-out" ? 0.45 : 1}" stroke-width="8" stroke-linecap="round" stroke-linejoin="round"/>
  ${state === "pending" ? TEMPLATE_BADGE : ""}
</svg>`;
}
mkdirSync(path.join(out, "tray"), { recursive: true });
for (const state of ["normal", "pending", "signed-out"]) {
  writeFileSync(path.join(out, "tray", `tray-${state}.png`), render(trayColour(state), 22));
  writeFileSync(path.join(out, "tray", `tray-${state}@2x.png`), render(trayColour(state), 44));
  writeFileSync(path.join(out, "tray", `tray-${state}Template.png`), render(trayTemplate(state), 16));
  writeFileSync(path.join(out, "tray", `tray-${state}Template@2x.png`), render(trayTemplate(state), 32));
}
console.log(`icons written to ${path.relative(process.cwd(), out) || "."}`);

// The README's CLI block against the CLI itself (buildProgram, the same commander tree `piper-link`
// runs): every command and flag the block names exists, and every command and flag the CLI has is in
// the block. A renamed flag or a new command fails here until the README says it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Help, type Command } from "commander";
import { buildProgram } from "../src/main/cli/main.js";

const README = readFileSync(path.resolve(import.meta.dirname, "..", "README.md"), "utf8");
/** Flags every command has, or the program's own: not repeated on each line. */
const EVERYWHERE = new Set(["--help", "-h", "--version", "-V", "--profile"]);

/** The ``` block under "## CLI". */
function cliBlock(): string[] {
  const start = README.indexOf("\n## CLI\n");
  assert.ok(start >= 0, "the README has a CLI section");
  const fence = /```\n([\s\S]*?)```/.exec(README.slice(start));
  assert.ok(fence?.[1]);
  return fence[1].split("\n");
}

/** Splits at top-level ` | ` (not inside [ ]). */
function alternatives(synopsis: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (let i = 0; i < synopsis.length; i++) {
    const c = synopsis.charAt(i);
    if (c === "[") depth++;
    if (c === "]") depth--;
    if (depth === 0 && synopsis.startsWith(" | ", i)) {
      parts.push(current);
      current = "";
      i += 2;
      continue;
    }
    current += c;
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

function flagsIn(text: string): string[] {
  return [...text.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*|-[A-Za-z])(?![\w-])/g)].map((m) => m[1] ?? "");
}

const help = new Help();
function sub(cmd: Command, name: string): Command | undefined {
  return cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));
}

/** Each README entry: the command path it names and the flags of its synopsis. */
function readmeEntries(program: Command): Array<{ path: string[]; flags: string[]; line: string }> {
  const entries: Array<{ path: string[]; flags: string[]; line: string }> = [];
  for (const raw of cliBlock()) {
    // A synopsis continued on the next line ("          [--bind …]"): its flags belong to the line above.
    if (/^ {3,}\[/.test(raw) && entries.length > 0) {
      const last = entries[entries.length - 1];
      if (last !== undefined) last.flags.push(...flagsIn(raw.trim().split(/\s{3,}/)[0] ?? ""));
      continue;
    }
    if (!/^ {2}[a-z]/.test(raw)) continue;
    const synopsis = raw.trim().split(/\s{3,}/)[0] ?? "";
    let previous: string[] = [];
    for (const part of alternatives(synopsis)) {
      const words = part.split(/\s+/);
      let cmd: Command = program;
      const commandPath: string[] = [];
      if (/^[-[]/.test(part) && previous.length > 0) {
        // Another set of flags of the same command ("--bearer NAME | --basic NAME", "| [--none]").
        commandPath.push(...previous);
      } else {
        // A part that does not start with a top-level command continues the previous one ("service install | uninstall").
        if (sub(program, words[0] ?? "") === undefined && previous.length > 0) {
          for (const w of previous.slice(0, -1)) {
            cmd = sub(cmd, w) ?? cmd;
            commandPath.push(w);
          }
        }
        for (const w of words) {
          const next = sub(cmd, w);
          if (next === undefined) break;
          cmd = next;
          commandPath.push(w);
        }
      }
      assert.ok(commandPath.length > 0, `README names a command the CLI does not have: "${part}" (${raw.trim()})`);
      entries.push({ path: commandPath, flags: flagsIn(part), line: raw.trim() });
      previous = commandPath;
    }
  }
  return entries;
}

function find(program: Command, commandPath: string[]): Command {
  let cmd = program;
  for (const w of commandPath) {
    const next = sub(cmd, w);
    assert.ok(next, commandPath.join(" "));
    cmd = next;
  }
  return cmd;
}

function optionFlags(cmd: Command): string[] {
  return help.visibleOptions(cmd).flatMap((o) => [o.long, o.short].filter((f): f is string => typeof f === "string"));
}

/** Every visible command that does something (has no subcommands of its own, or has an action). */
function allCommands(cmd: Command, prefix: string[] = []): string[][] {
  return help.visibleCommands(cmd).flatMap((c) => {
    if (c.name() === "help") return [];
    const here = [...prefix, c.name()];
    return c.commands.length === 0 ? [here] : allCommands(c, here);
  });
}

describe("the README's CLI block", () => {
  const program = buildProgram(() => Promise.resolve());
  const entries = readmeEntries(program);

  it("names only commands and flags the CLI has", () => {
    for (const entry of entries) {
      const cmd = find(program, entry.path);
      const known = new Set([...optionFlags(cmd), ...EVERYWHERE]);
      for (const flag of entry.flags)
        assert.ok(
          known.has(flag),
          `README: \`${entry.path.join(" ")} ${flag}\` is not a flag of that command (${entry.line})`,
        );
    }
  });

  it("names every command and every flag the CLI has", () => {
    const named = new Map<string, Set<string>>();
    for (const e of entries) {
      const key = e.path.join(" ");
      named.set(key, new Set([...(named.get(key) ?? []), ...e.flags]));
    }
    const missing: string[] = [];
    for (const commandPath of allCommands(program)) {
      const key = commandPath.join(" ");
      const flags = named.get(key);
      if (flags === undefined) {
        missing.push(`command \`${key}\``);
        continue;
      }
      // A flag counts once, in its long form when it has one.
      for (const o of help.visibleOptions(find(program, commandPath))) {
        const forms = [o.long, o.short].filter((f): f is string => typeof f === "string");
        // `--json` is stated once under the block for every command that prints a result.
        if (forms.some((f) => EVERYWHERE.has(f) || f === "--json")) continue;
        if (!forms.some((f) => flags.has(f))) missing.push(`\`${key} ${forms.join("/")}\``);
      }
    }
    assert.deepEqual(missing, [], `the README's CLI block lacks: ${missing.join(", ")}`);
  });
});

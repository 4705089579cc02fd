/**
 * Writes docs/protocol.md and docs/protocol.schema.json from the agent protocol's zod schemas
 * (src/shared/protocol.ts, calls.ts, grant-terms.ts), its error codes (errors.ts), close codes and
 * limits, so the document SDK writers read cannot drift from what the Link validates:
 * `npm run docs:protocol` writes both files, test/protocol-doc.test.ts fails when the committed ones
 * differ from what this renders.
 *
 * Types come from zod itself (`z.toJSONSchema` for every leaf, the schema tree for structure); the
 * prose is the schemas' own JSDoc, read with the TypeScript compiler API, so a docstring is written
 * once, next to the schema it describes. Every example below is parsed by its schema while
 * rendering: an example the schema rejects stops the script.
 *
 * Usage: `node --import tsx scripts/protocol-doc.ts` (writes), `--check` (exits 1 when stale).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { z } from "zod";
import * as callsModule from "../src/shared/calls.js";
import * as grantTermsModule from "../src/shared/grant-terms.js";
import * as protocolModule from "../src/shared/protocol.js";
import * as discoveryModule from "../src/shared/discovery.js";
import * as defaultsModule from "../src/shared/defaults.js";
import * as errorsModule from "../src/shared/errors.js";
import { ERROR_CODES, isRetryable } from "../src/shared/errors.js";
import { AGENT_SUBPROTOCOL, DEFAULT_LINK_PORT, PROTOCOL_VERSION } from "../src/shared/version.js";
import { DEFAULT_LIMITS } from "../src/main/core/loopback/limits.js";

const ROOT = path.resolve(import.meta.dirname, "..");
export const PROTOCOL_DOC_PATH = path.join(ROOT, "docs", "protocol.md");
export const PROTOCOL_SCHEMA_PATH = path.join(ROOT, "docs", "protocol.schema.json");

/** Source files whose docstrings feed the document, relative to the repository root. */
const SOURCES = [
  "src/shared/protocol.ts",
  "src/shared/calls.ts",
  "src/shared/grant-terms.ts",
  "src/shared/errors.ts",
  "src/shared/discovery.ts",
  "src/shared/defaults.ts",
  "src/main/core/loopback/limits.ts",
];

type Io = "input" | "output";

// ---------------------------------------------------------------------------------------------
// Docstrings, read with the TypeScript compiler API

interface SourceDocs {
  /** `Name` for an exported const or interface, `Name.a.b` for a property inside it. */
  docs: Map<string, string>;
  /** The module's opening docstring per source file. */
  moduleDocs: Map<string, string>;
  /** The `// group` line comment before each error code in ERROR_CODES. */
  errorGroups: Map<string, string>;
}

/**
 * Docstrings cite the design notes (`DESIGN.md section 4`), which live outside the repository; the
 * document's readers have this document instead, so such citations are left out of its prose.
 */
function prose(text: string): string {
  return text.replace(/ \(DESIGN\.md section \d+\)/g, "").replace(/\(DESIGN\.md section \d+, /g, "(");
}

function jsDocText(node: ts.Node): string | undefined {
  const parts = ts
    .getJSDocCommentsAndTags(node)
    .filter((d): d is ts.JSDoc => ts.isJSDoc(d))
    .map((d) => prose(ts.getTextOfJSDocComment(d.comment) ?? ""))
    .filter((t) => t.trim() !== "");
  return parts.length > 0 ? parts.join("\n\n") : undefined;
}

function propertyName(name: ts.PropertyName): string | undefined {
  if (ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isNumericLiteral(name)) return name.text;
  return undefined;
}

function readDocs(): SourceDocs {
  const docs = new Map<string, string>();
  const moduleDocs = new Map<string, string>();
  const errorGroups = new Map<string, string>();
  for (const rel of SOURCES) {
    const text = readFileSync(path.join(ROOT, rel), "utf8");
    const file = ts.createSourceFile(rel, text, ts.ScriptTarget.Latest, true);
    const opening = /^\/\*\*([\s\S]*?)\*\//.exec(text);
    if (opening?.[1] !== undefined) moduleDocs.set(rel, prose(cleanBlockComment(opening[1])));

    const walk = (node: ts.Node, at: string): void => {
      ts.forEachChild(node, (child) => {
        if (ts.isPropertyAssignment(child) || ts.isPropertySignature(child)) {
          const key = propertyName(child.name);
          if (key === undefined) return;
          const doc = jsDocText(child);
          if (doc !== undefined) docs.set(`${at}.${key}`, doc);
          walk(child, `${at}.${key}`);
        } else {
          walk(child, at);
        }
      });
    };
    for (const statement of file.statements) {
      if (ts.isVariableStatement(statement)) {
        for (const decl of statement.declarationList.declarations) {
          if (!ts.isIdentifier(decl.name)) continue;
          const name = decl.name.text;
          const doc = jsDocText(decl);
          if (doc !== undefined) docs.set(name, doc);
          if (decl.initializer !== undefined) walk(decl.initializer, name);
          if (name === "ERROR_CODES" && decl.initializer !== undefined)
            readErrorGroups(decl.initializer, text, errorGroups);
        }
      } else if (ts.isInterfaceDeclaration(statement) || ts.isFunctionDeclaration(statement)) {
        const name = statement.name?.text;
        if (name === undefined) continue;
        const doc = jsDocText(statement);
        if (doc !== undefined) docs.set(name, doc);
        if (ts.isInterfaceDeclaration(statement)) walk(statement, name);
      }
    }
  }
  return { docs, moduleDocs, errorGroups };
}

function cleanBlockComment(body: string): string {
  return body
    .split("\n")
    .map((line) => line.replace(/^\s*\* ?/, ""))
    .join("\n")
    .trim();
}

function readErrorGroups(init: ts.Expression, text: string, out: Map<string, string>): void {
  const array = ts.isAsExpression(init) ? init.expression : init;
  if (!ts.isArrayLiteralExpression(array))
    throw new Error("ERROR_CODES is no longer an array literal: update scripts/protocol-doc.ts");
  let group = "";
  for (const element of array.elements) {
    for (const range of ts.getLeadingCommentRanges(text, element.pos) ?? []) {
      const comment = text.slice(range.pos, range.end);
      if (comment.startsWith("//")) group = prose(comment.slice(2).trim());
    }
    if (ts.isStringLiteral(element)) out.set(element.text, group);
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas and their names

/** Every exported schema of the protocol's modules, by its export name without "Schema". */
function namedSchemas(): Map<z.ZodType, string> {
  const names = new Map<z.ZodType, string>();
  for (const mod of [errorsModule, grantTermsModule, callsModule, protocolModule]) {
    for (const [exportName, value] of Object.entries(mod)) {
      if (value instanceof z.ZodType && exportName.endsWith("Schema") && !names.has(value))
        names.set(value, exportName);
    }
  }
  return names;
}

function shapeTitle(exportName: string): string {
  return exportName.replace(/Schema$/, "");
}

function anchor(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .replace(/ /g, "-");
}

/** The zod objects that make up the agent and Link message unions, keyed by their `type`. */
function messageOptions(union: z.ZodDiscriminatedUnion): { type: string; schema: z.ZodObject }[] {
  return union.options.map((option) => {
    if (!(option instanceof z.ZodObject)) throw new Error("a protocol message is not a z.object");
    const typeField: unknown = option.shape["type"];
    if (!(typeField instanceof z.ZodLiteral)) throw new Error("a protocol message has no literal `type`");
    return { type: String(typeField.value), schema: option };
  });
}

// ---------------------------------------------------------------------------------------------
// Rendering types

type Json = Record<string, unknown>;

function jsonSchemaOf(schema: z.ZodType, io: Io): Json {
  return z.toJSONSchema(schema, { io, unrepresentable: "any" });
}

const SAFE_INT = Number.MAX_SAFE_INTEGER;

function numberText(js: Json): string {
  const kind = js["type"] === "integer" ? "integer" : "number";
  const bounds: string[] = [];
  const min = js["minimum"];
  const max = js["maximum"];
  const exMin = js["exclusiveMinimum"];
  if (typeof exMin === "number") bounds.push(`> ${exMin}`);
  if (typeof min === "number" && min !== -SAFE_INT) bounds.push(`≥ ${min}`);
  if (typeof max === "number" && max !== SAFE_INT) bounds.push(`≤ ${max}`);
  return bounds.length > 0 ? `${kind} (${bounds.join(", ")})` : kind;
}

function stringText(js: Json): string {
  const notes: string[] = [];
  const min = js["minLength"];
  const max = js["maxLength"];
  if (typeof min === "number" && typeof max === "number") notes.push(`${min}–${max} chars`);
  else if (typeof max === "number") notes.push(`≤ ${max} chars`);
  else if (typeof min === "number") notes.push(`≥ ${min} chars`);
  if (js["contentEncoding"] === "base64" || js["format"] === "base64") notes.push("base64");
  else if (typeof js["pattern"] === "string") notes.push(`pattern \`${js["pattern"]}\``);
  return notes.length > 0 ? `string (${notes.join(", ")})` : "string";
}

function leafText(js: Json): string {
  if ("const" in js) return `\`${JSON.stringify(js["const"])}\``;
  const values = js["enum"];
  if (Array.isArray(values)) return values.map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ");
  const alternatives = js["anyOf"] ?? js["oneOf"];
  if (Array.isArray(alternatives)) return alternatives.map((a) => leafText(a as Json)).join(" \\| ");
  switch (js["type"]) {
    case "string":
      return stringText(js);
    case "integer":
    case "number":
      return numberText(js);
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array": {
      const items = js["items"];
      return `${items === undefined ? "any" : leafText(items as Json)}[]`;
    }
    case "object":
      return "object";
    default:
      return "any";
  }
}

interface Renderer {
  names: Map<z.ZodType, string>;
  /** Named shapes a rendered type linked to; each gets its own section. */
  referenced: Set<z.ZodType>;
  docs: Map<string, string>;
}

/** A field type in one line: named shapes as links, structure from zod, leaves from JSON Schema. */
function typeText(r: Renderer, schema: z.ZodType, io: Io, root: z.ZodType | null = null): string {
  const name = r.names.get(schema);
  if (name !== undefined && schema !== root && name !== "ErrorCodeSchema") {
    r.referenced.add(schema);
    const title = shapeTitle(name);
    return `[${title}](#${anchor(title)})`;
  }
  if (name === "ErrorCodeSchema" && schema !== root) return "[ErrorCode](#error-codes)";
  if (schema instanceof z.ZodOptional) return typeText(r, schema.unwrap() as z.ZodType, io);
  if (schema instanceof z.ZodDefault) return typeText(r, schema.unwrap() as z.ZodType, io);
  if (schema instanceof z.ZodNullable) return `${typeText(r, schema.unwrap() as z.ZodType, io)} \\| null`;
  if (schema instanceof z.ZodArray) {
    const js = jsonSchemaOf(schema, io);
    const element = typeText(r, schema.element as z.ZodType, io);
    const min = js["minItems"];
    const max = js["maxItems"];
    const count =
      typeof min === "number" && typeof max === "number"
        ? ` (${min}–${max} items)`
        : typeof max === "number"
          ? ` (≤ ${max} items)`
          : "";
    return `${element.includes("\\|") ? `(${element})` : element}[]${count}`;
  }
  if (schema instanceof z.ZodRecord) {
    return `map of ${typeText(r, schema.keyType as z.ZodType, io)} → ${typeText(r, schema.valueType as z.ZodType, io)}`;
  }
  if (schema instanceof z.ZodTuple) {
    return `[${(schema.def.items as z.ZodType[]).map((item) => typeText(r, item, io)).join(", ")}]`;
  }
  if (schema instanceof z.ZodUnion) {
    return (schema.options as z.ZodType[]).map((option) => typeText(r, option, io)).join(" \\| ");
  }
  if (schema instanceof z.ZodObject) return "object";
  return leafText(jsonSchemaOf(schema, io));
}

function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").replace(/(?<!\\)\|/g, "\\|");
}

function unwrapAll(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault)
      s = s.unwrap() as z.ZodType;
    else return s;
  }
}

/** The field table of one object: nested unnamed objects become `parent.child` rows. */
function fieldRows(r: Renderer, object: z.ZodObject, io: Io, docKey: string, prefix = ""): string[] {
  const js = jsonSchemaOf(object, io);
  const required = new Set(Array.isArray(js["required"]) ? (js["required"] as string[]) : []);
  const properties = (js["properties"] ?? {}) as Record<string, Json>;
  const rows: string[] = [];
  const shape: Record<string, z.ZodType> = object.shape;
  for (const [key, field] of Object.entries(shape)) {
    const fieldJs = properties[key] ?? {};
    const doc =
      r.docs.get(`${docKey}.${key}`) ?? (typeof fieldJs["description"] === "string" ? fieldJs["description"] : "");
    const def = fieldJs["default"];
    const req = required.has(key) ? "yes" : def === undefined ? "no" : `no (default \`${JSON.stringify(def)}\`)`;
    rows.push(`| \`${prefix}${key}\` | ${cell(typeText(r, field, io))} | ${req} | ${cell(doc)} |`);
    const inner = unwrapAll(field);
    if (inner instanceof z.ZodObject && !r.names.has(inner))
      rows.push(...fieldRows(r, inner, io, `${docKey}.${key}`, `${prefix}${key}.`));
  }
  return rows;
}

function fieldTable(r: Renderer, object: z.ZodObject, io: Io, docKey: string): string {
  // Only a strict object refuses unknown fields; the others ignore them (a newer peer may add some).
  const strict = object.def.catchall instanceof z.ZodNever ? "\nNo other fields are allowed.\n" : "";
  return (
    [
      "| Field | Type | Required | Description |",
      "| --- | --- | --- | --- |",
      ...fieldRows(r, object, io, docKey),
    ].join("\n") +
    "\n" +
    strict
  );
}

// ---------------------------------------------------------------------------------------------
// Examples (each one parsed by its schema while rendering)

const AGENT_EXAMPLES: Record<string, unknown[]> = {
  hello: [
    {
      type: "hello",
      id: 1,
      protocol: PROTOCOL_VERSION,
      agent: { clientId: "agent_x", name: "My Agent" },
      sdk: { name: "my-sdk", version: "1.0.0" },
    },
  ],
  resolve: [
    {
      type: "resolve",
      id: 2,
      variable: "OPENAI_API_KEY",
      reason: "summarise the inbox",
      wait: true,
      timeoutMs: 120_000,
    },
  ],
  resolveMany: [{ type: "resolveMany", id: 3, variables: ["OPENAI_API_KEY", "GITHUB_TOKEN"], reason: "nightly job" }],
  call: [
    {
      type: "call",
      id: 4,
      method: "POST",
      url: "https://api.example.com/v1/items?page=2",
      headers: { "Content-Type": "application/json" },
      body: { text: '{"name":"x"}' },
      auth: { bearer: "API_TOKEN" },
      reason: "create the item",
    },
  ],
  cancel: [{ type: "cancel", id: 4 }],
  grants: [{ type: "grants", id: 5 }],
  validate: [{ type: "validate", id: 6, variable: "openai-api-key" }],
  metadata: [{ type: "metadata", id: 7, variable: "OPENAI_API_KEY" }],
  permissionCheck: [{ type: "permissionCheck", id: 8, variable: "OPENAI_API_KEY" }],
  requestAccess: [
    {
      type: "requestAccess",
      id: 9,
      variable: "STRIPE_KEY",
      method: "GET",
      url: "https://api.stripe.com/v1/charges",
      reason: "list today's charges",
    },
  ],
};

const LINK_EXAMPLES: Record<string, unknown[]> = {
  welcome: [
    {
      type: "welcome",
      id: 1,
      instanceId: "inst_5f2c",
      link: { version: "0.1.0" },
      authority: "https://authority.example.com",
    },
  ],
  context: [
    { type: "context", instanceId: "inst_5f2c", state: "ready" },
    { type: "context", instanceId: null, state: "logged_out", reason: "locked" },
  ],
  pending: [{ type: "pending", id: 2, requestId: "req_81d0", approveIn: "Piper Link" }],
  secret: [
    {
      type: "secret",
      id: 2,
      variable: "OPENAI_API_KEY",
      value: "sk-…",
      grantId: "gr_19aa",
      expiresAt: "2025-01-01T12:00:00.000Z",
    },
  ],
  secrets: [
    {
      type: "secrets",
      id: 3,
      results: {
        OPENAI_API_KEY: { value: "sk-…", grantId: "gr_19aa", expiresAt: null },
        GITHUB_TOKEN: { error: { code: "denied", message: "The person denied this request.", retryable: false } },
      },
    },
  ],
  error: [
    {
      type: "error",
      id: 2,
      code: "not_logged_in",
      message: "Piper Link is running but nobody is signed in. Open Piper Link and sign in.",
      retryable: false,
    },
  ],
  "call.head": [
    {
      type: "call.head",
      id: 4,
      status: 201,
      statusText: "Created",
      headers: [["content-type", "application/json"]],
      redacted: false,
      url: "https://api.example.com/v1/items",
    },
  ],
  "call.chunk": [{ type: "call.chunk", id: 4, data: "eyJpZCI6MX0=" }],
  "call.end": [{ type: "call.end", id: 4, bytes: 8, redacted: false, durationMs: 41.2 }],
  "grants.list": [
    {
      type: "grants.list",
      id: 5,
      grants: [{ variable: "openai_api_key", mode: { kind: "read" }, expiresAt: 1735732800000 }],
    },
  ],
  "validate.result": [
    {
      type: "validate.result",
      id: 6,
      variable: "openai-api-key",
      normalized: "openai_api_key",
      wellFormed: true,
      problem: null,
      mapped: true,
      secretName: "OPENAI_API_KEY",
    },
  ],
  "metadata.result": [
    {
      type: "metadata.result",
      id: 7,
      variable: "OPENAI_API_KEY",
      secret: {
        name: "OPENAI_API_KEY",
        hosts: ["api.openai.com"],
        createdAt: "2024-11-02T09:15:00.000Z",
        updatedAt: "2024-12-01T10:00:00.000Z",
      },
    },
  ],
  "permissionCheck.result": [
    {
      type: "permissionCheck.result",
      id: 8,
      variable: "OPENAI_API_KEY",
      granted: true,
      grant: {
        grantId: "gr_19aa",
        secretName: "OPENAI_API_KEY",
        binding: "program",
        scope: "duration",
        mode: { kind: "read" },
        policy: null,
        expiresAt: 1735732800000,
      },
    },
  ],
  access: [{ type: "access", id: 9, variable: "STRIPE_KEY", state: "pending", requestId: "req_a7c3" }],
};

/** Which frames answer which request, in the order they arrive. */
const ANSWERS: [request: string, answers: string][] = [
  [
    "hello",
    "`welcome`, or `error` (`not_logged_in`, `locked`, `unsupported_protocol`, `bad_request`); then `context` whenever the instance changes",
  ],
  [
    "resolve",
    "`secret` at once for a live grant; else `pending`, then (when `wait` is true) `secret` or `error` (`denied`, `timeout`, …); with `wait: false` `error` `grant_needed`",
  ],
  [
    "resolveMany",
    "at most one `pending` (naming every request made), then exactly one `secrets`; `error` when the whole message failed",
  ],
  [
    "call",
    "`pending` when a secret needs approval, then `call.head`, any number of `call.chunk`, `call.end`; or `error` at any point",
  ],
  ["cancel", "nothing"],
  ["grants", "`grants.list`"],
  ["validate", "`validate.result`"],
  ["metadata", "`metadata.result`, or `error` `secret_not_found`"],
  ["permissionCheck", "`permissionCheck.result`"],
  ["requestAccess", "`access`, or `error`"],
];

function examplesOf(schema: z.ZodType, examples: unknown[] | undefined, label: string): string {
  if (examples === undefined || examples.length === 0)
    throw new Error(`no example for ${label}: add one to scripts/protocol-doc.ts`);
  return examples
    .map((example) => {
      const parsed = schema.safeParse(example);
      if (!parsed.success)
        throw new Error(`the example for ${label} does not match its schema: ${z.prettifyError(parsed.error)}`);
      return "```json\n" + JSON.stringify(example) + "\n```\n";
    })
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// The document

function docOf(r: Renderer, key: string): string {
  const doc = r.docs.get(key);
  return doc === undefined ? "" : doc + "\n\n";
}

function messageSection(
  r: Renderer,
  type: string,
  schema: z.ZodObject,
  io: Io,
  examples: Record<string, unknown[]>,
): string {
  const exportName = r.names.get(schema);
  if (exportName === undefined) throw new Error(`message ${type} is not exported from src/shared`);
  return [
    `### \`${type}\``,
    "",
    `${docOf(r, exportName)}${fieldTable(r, schema, io, exportName)}`,
    `Example:\n\n${examplesOf(schema, examples[type], type)}`,
  ].join("\n");
}

function shapeSection(r: Renderer, schema: z.ZodType, io: Io): string {
  const exportName = r.names.get(schema);
  if (exportName === undefined) throw new Error("an unnamed shape");
  const lines = [`### ${shapeTitle(exportName)}`, "", docOf(r, exportName).trimEnd()];
  if (schema instanceof z.ZodObject) {
    lines.push("", fieldTable(r, schema, io, exportName));
  } else if (schema instanceof z.ZodUnion && (schema.options as z.ZodType[]).every((o) => o instanceof z.ZodObject)) {
    lines.push("", "One of:", "");
    (schema.options as z.ZodObject[]).forEach((option, i) => {
      lines.push(`${i + 1}.`, "", fieldTable(r, option, io, exportName).replace(/^/gm, "   ").replace(/^ +$/gm, ""));
    });
  } else {
    lines.push("", `Type: ${typeText(r, schema, io, schema)}`, "");
  }
  return lines.join("\n").replace(/\n{3,}/g, "\n\n");
}

function limitsSection(r: Renderer): string {
  const rows: string[] = [];
  const add = (name: string, value: number, unit: string, doc: string | undefined): void => {
    rows.push(`| \`${name}\` | ${value.toLocaleString("en-US")}${unit} | ${cell(doc ?? "")} |`);
  };
  const unitOf = (key: string): string => (/Ms$/.test(key) ? " ms" : /Bytes$/.test(key) ? " bytes" : "");
  add("MAX_FRAME_BYTES", protocolModule.MAX_FRAME_BYTES, " bytes", r.docs.get("MAX_FRAME_BYTES"));
  add("MAX_RESOLVE_MANY", protocolModule.MAX_RESOLVE_MANY, "", r.docs.get("MAX_RESOLVE_MANY"));
  add("MAX_SECRET_NAME_CHARS", protocolModule.MAX_SECRET_NAME_CHARS, "", r.docs.get("MAX_SECRET_NAME_CHARS"));
  for (const [key, value] of Object.entries(defaultsModule.AGENT_DEFAULTS))
    add(`AGENT_DEFAULTS.${key}`, value, unitOf(key), r.docs.get(`AGENT_DEFAULTS.${key}`));
  for (const [key, value] of Object.entries(callsModule.CALL_LIMITS))
    add(`CALL_LIMITS.${key}`, value, unitOf(key), r.docs.get(`CALL_LIMITS.${key}`));
  const connection: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(connection)) {
    if (key === "maxFrameBytes") continue;
    add(`connection.${key}`, value, unitOf(key), r.docs.get(`LinkLimits.${key}`));
  }
  return ["| Limit | Default | Meaning |", "| --- | --- | --- |", ...rows].join("\n") + "\n";
}

function errorSection(r: Renderer, groups: Map<string, string>): string {
  const rows = ERROR_CODES.map(
    (code) => `| \`${code}\` | ${isRetryable(code) ? "yes" : "no"} | ${cell(groups.get(code) ?? "")} |`,
  );
  return (
    [
      docOf(r, "ERROR_CODES").trimEnd(),
      "",
      "| Code | Retryable | Where it comes from |",
      "| --- | --- | --- |",
      ...rows,
    ].join("\n") + "\n"
  );
}

function closeSection(r: Renderer): string {
  const rows = Object.entries(protocolModule.CloseCode).map(
    ([name, code]) => `| ${code} | \`${name}\` | ${cell(r.docs.get(`CloseCode.${name}`) ?? "")} |`,
  );
  return (
    [docOf(r, "CloseCode").trimEnd(), "", "| Code | Name | Meaning |", "| --- | --- | --- |", ...rows].join("\n") + "\n"
  );
}

const NORMALIZE_SAMPLES = ["OPENAI_API_KEY", "openai-api-key", "Stripe Key (live)", "my--db__url"];

/** The whole of docs/protocol.md. Throws when a message lacks an example or an example fails its schema. */
export function renderProtocolDoc(): string {
  const { docs, moduleDocs, errorGroups } = readDocs();
  const r: Renderer = { names: namedSchemas(), referenced: new Set(), docs };
  const agent = messageOptions(protocolModule.AgentMessageSchema);
  const link = messageOptions(protocolModule.LinkMessageSchema);

  const agentTypes = new Set(agent.map((m) => m.type));
  for (const t of protocolModule.AGENT_MESSAGE_TYPES)
    if (!agentTypes.has(t)) throw new Error(`AGENT_MESSAGE_TYPES names ${t}, which AgentMessageSchema lacks`);
  for (const [request] of ANSWERS)
    if (!agentTypes.has(request)) throw new Error(`the answers table names ${request}, which is not an agent message`);
  for (const t of agentTypes)
    if (!ANSWERS.some(([request]) => request === t))
      throw new Error(`the answers table lacks ${t}: add it to scripts/protocol-doc.ts`);

  const agentSections = agent.map((m) => messageSection(r, m.type, m.schema, "input", AGENT_EXAMPLES));
  const linkSections = link.map((m) => messageSection(r, m.type, m.schema, "output", LINK_EXAMPLES));

  // Shapes referenced by messages, then by shapes (rendering one may reference more).
  const shapeSections: string[] = [];
  const rendered = new Set<z.ZodType>();
  for (;;) {
    const next = [...r.referenced]
      .filter((s) => !rendered.has(s))
      .sort((a, b) => (r.names.get(a) ?? "").localeCompare(r.names.get(b) ?? ""));
    if (next.length === 0) break;
    for (const s of next) {
      rendered.add(s);
      shapeSections.push(shapeSection(r, s, "input"));
    }
  }
  shapeSections.sort((a, b) => a.localeCompare(b));

  const discoveryDocs = moduleDocs.get("src/shared/discovery.ts") ?? "";
  const discoveryTable = fieldTable(r, discoveryModule.DiscoveryFileSchema, "output", "DiscoveryFileSchema");
  const linuxPath = discoveryModule.discoveryFilePath({
    platform: "linux",
    env: { XDG_RUNTIME_DIR: "/run/user/1000" },
    homedir: "/home/ada",
  });

  const parts = [
    "# The agent protocol",
    "",
    "<!-- Generated by `npm run docs:protocol` (scripts/protocol-doc.ts) from src/shared: protocol.ts, calls.ts,",
    "     grant-terms.ts, errors.ts, defaults.ts, discovery.ts, and the connection limits of core/loopback/limits.ts.",
    "     Do not edit by hand: change the schemas or their docstrings and run the script again.",
    "     test/protocol-doc.test.ts fails when this file differs from what the script writes. -->",
    "",
    "This is the reference for writing a Piper Link SDK in any language: every frame an agent may send, every",
    "frame the Link answers with, their fields, the error and close codes, and the limits. The same shapes are",
    "in [protocol.schema.json](protocol.schema.json) as JSON Schema (draft 2020-12). The TypeScript SDK",
    "(`packages/sdk`, [sdk.md](sdk.md)) and the Python SDK ([python.md](python.md)) speak this protocol.",
    "",
    moduleDocs.get("src/shared/protocol.ts") ?? "",
    "",
    "## Connecting",
    "",
    `- A WebSocket to \`ws://127.0.0.1:${DEFAULT_LINK_PORT}/v1/link\` (or \`[::1]\`), subprotocol \`${AGENT_SUBPROTOCOL}\`.`,
    "  Frames are JSON text frames, one message each. Send no `Origin` header (the Link refuses any Origin but its",
    "  own window's) and a `Host` of `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`.",
    "- Where the Link listens, in this order: an explicit URL the program was given; the `PIPER_LINK_URL`",
    `  environment variable; the discovery file; \`ws://127.0.0.1:${DEFAULT_LINK_PORT}/v1/link\`.`,
    `- The first frame is \`hello\` with \`protocol: ${PROTOCOL_VERSION}\`; the Link answers \`welcome\` and then pushes \`context\``,
    "  whenever the instance appears or goes away. Every request carries an `id` of the agent's choosing; every",
    "  answer to it, `error` included, echoes that `id`.",
    "- An unknown `type` is answered with `error` `unknown_type`; a frame that is not JSON or fails its schema with",
    "  `malformed_frame` or `bad_request` (and `id` null when the frame could not be read far enough). Repeated",
    "  errors close the connection with a [close code](#close-codes).",
    "",
    "### The discovery file",
    "",
    discoveryDocs,
    "",
    `On Linux it is \`$XDG_RUNTIME_DIR/piper-link/link.json\` (e.g. \`${linuxPath}\`); on macOS and Windows, and on`,
    "Linux without `XDG_RUNTIME_DIR`, the per-user application-data folder instead. It is written atomically with",
    "mode 0600; a file whose `pid` is no longer running is stale and must be ignored.",
    "",
    discoveryTable,
    "## Requests and their answers",
    "",
    "| Agent sends | The Link answers |",
    "| --- | --- |",
    ...ANSWERS.map(([request, answers]) => `| \`${request}\` | ${answers} |`),
    "",
    "## Agent → Link messages",
    "",
    "Fields with a default may be left out.",
    "",
    ...agentSections,
    "## Link → agent messages",
    "",
    ...linkSections,
    "## Shapes",
    "",
    "Types the messages above share.",
    "",
    ...shapeSections,
    "",
    "## Variable names",
    "",
    docOf(r, "normalizeVariable").trimEnd(),
    "",
    "| Sent | Normalized |",
    "| --- | --- |",
    ...NORMALIZE_SAMPLES.map((s) => `| \`${s}\` | \`${protocolModule.normalizeVariable(s)}\` |`),
    "",
    "## Error codes",
    "",
    errorSection(r, errorGroups),
    "## Close codes",
    "",
    closeSection(r),
    "## Limits",
    "",
    "The Link's defaults; a Link may be started with other connection limits.",
    "",
    limitsSection(r),
  ];
  return (
    parts
      .join("\n")
      .replace(/\n{3,}/g, "\n\n")
      .trimEnd() + "\n"
  );
}

/** The JSON Schema (draft 2020-12) of every agent -> Link and Link -> agent message. */
export function renderProtocolSchema(): string {
  const schema = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "Piper Link agent protocol",
    description: `Protocol version ${PROTOCOL_VERSION}, WebSocket subprotocol ${AGENT_SUBPROTOCOL}. Generated by npm run docs:protocol from src/shared; do not edit.`,
    $defs: {
      AgentMessage: z.toJSONSchema(protocolModule.AgentMessageSchema, { io: "input", target: "draft-2020-12" }),
      LinkMessage: z.toJSONSchema(protocolModule.LinkMessageSchema, { io: "output", target: "draft-2020-12" }),
    },
  };
  // The nested `$schema` keys repeat the top-level one.
  for (const def of Object.values(schema.$defs)) delete (def as Json)["$schema"];
  return JSON.stringify(schema, null, 2) + "\n";
}

function main(): void {
  const outputs: [string, string][] = [
    [PROTOCOL_DOC_PATH, renderProtocolDoc()],
    [PROTOCOL_SCHEMA_PATH, renderProtocolSchema()],
  ];
  if (process.argv.includes("--check")) {
    const stale = outputs.filter(([file, text]) => {
      try {
        return readFileSync(file, "utf8") !== text;
      } catch {
        return true;
      }
    });
    for (const [file] of stale) console.error(`${path.relative(ROOT, file)} is stale: run npm run docs:protocol`);
    process.exitCode = stale.length > 0 ? 1 : 0;
    return;
  }
  for (const [file, text] of outputs) {
    writeFileSync(file, text);
    console.log(`wrote ${path.relative(ROOT, file)}`);
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename) main();

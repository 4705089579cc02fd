/**
 * docs/protocol.md and docs/protocol.schema.json are generated from src/shared (scripts/protocol-doc.ts):
 * the committed files must be exactly what the generator writes now, so the document SDK writers read
 * cannot drift from the schemas the Link validates.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  PROTOCOL_DOC_PATH,
  PROTOCOL_SCHEMA_PATH,
  renderProtocolDoc,
  renderProtocolSchema,
} from "../scripts/protocol-doc.js";
import { ERROR_CODES } from "../src/shared/errors.js";
import { AGENT_MESSAGE_TYPES, CloseCode, LinkMessageSchema } from "../src/shared/protocol.js";

describe("docs/protocol.md", () => {
  const doc = renderProtocolDoc();

  it("is what `npm run docs:protocol` writes from the current schemas", () => {
    assert.equal(
      readFileSync(PROTOCOL_DOC_PATH, "utf8"),
      doc,
      "docs/protocol.md is stale: run `npm run docs:protocol` and commit it",
    );
  });

  it("docs/protocol.schema.json is what `npm run docs:protocol` writes", () => {
    assert.equal(
      readFileSync(PROTOCOL_SCHEMA_PATH, "utf8"),
      renderProtocolSchema(),
      "docs/protocol.schema.json is stale: run `npm run docs:protocol`",
    );
  });

  it("documents every message type, error code and close code", () => {
    for (const type of AGENT_MESSAGE_TYPES) assert.ok(doc.includes(`### \`${type}\``), `no section for ${type}`);
    for (const option of LinkMessageSchema.options)
      assert.ok(doc.includes(`### \`${option.shape.type.value}\``), `no section for ${option.shape.type.value}`);
    for (const code of ERROR_CODES) assert.ok(doc.includes(`| \`${code}\` |`), `no row for ${code}`);
    for (const [name, code] of Object.entries(CloseCode))
      assert.ok(doc.includes(`| ${code} | \`${name}\` |`), `no row for ${name}`);
  });

  it("keeps the schemas' docstrings as its prose (a field's JSDoc appears in its row)", () => {
    // HelloSchema's `actingFor` and CallSchema's `askIfRefused` are documented only by their JSDoc.
    assert.match(doc, /\| `actingFor` \|[^\n]*Only Piper Link's own commands may send this/);
    assert.match(doc, /\| `askIfRefused` \|[^\n]*When a grant exists but does not allow this method and URL/);
  });
});

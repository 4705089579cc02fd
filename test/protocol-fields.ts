/**
 * Prints the agent protocol's message types and fields as JSON, read from the zod schemas of
 * src/shared (the one description of the wire format), for other languages' SDKs to check their
 * models against (python/tests/test_protocol_models.py). Run: node --import tsx test/protocol-fields.ts
 */
import type { z } from "zod";
import { CallAuthSchema } from "../src/shared/calls.js";
import { ERROR_CODES } from "../src/shared/errors.js";
import { AgentMessageSchema, LinkMessageSchema, MAX_RESOLVE_MANY, MAX_FRAME_BYTES } from "../src/shared/protocol.js";
import { AGENT_SUBPROTOCOL, PROTOCOL_VERSION } from "../src/shared/version.js";

type Fields = { required: string[]; optional: string[] };

function fieldsOf(options: readonly z.ZodObject<Record<string, z.ZodType>>[]): Record<string, Fields> {
  const out: Record<string, Fields> = {};
  for (const option of options) {
    const type: z.ZodType | undefined = option.shape["type"];
    const literal = type !== undefined && "value" in type ? String(type.value) : "?";
    const required: string[] = [];
    const optional: string[] = [];
    for (const [name, schema] of Object.entries<z.ZodType>(option.shape)) {
      // Optional or defaulted on input: the sender may leave it out.
      (schema.safeParse(undefined).success ? optional : required).push(name);
    }
    out[literal] = { required: required.sort(), optional: optional.sort() };
  }
  return out;
}

process.stdout.write(
  JSON.stringify({
    protocolVersion: PROTOCOL_VERSION,
    subprotocol: AGENT_SUBPROTOCOL,
    maxFrameBytes: MAX_FRAME_BYTES,
    maxResolveMany: MAX_RESOLVE_MANY,
    agentMessages: fieldsOf(AgentMessageSchema.options),
    linkMessages: fieldsOf(LinkMessageSchema.options),
    callAuthStyles: Object.keys(CallAuthSchema.shape).sort(),
    errorCodes: [...ERROR_CODES],
  }),
);

/**
 * The control channel (`/v1/control`, DESIGN.md section 3): how the UI and the CLI talk to the
 * running Link core. The first frame must be `auth` with the per-start token; after that the client
 * sends `call` frames and receives `result`/`error` replies plus `event` pushes. Every method is
 * declared once here with its params and result schema; `LinkApi` is derived from this table.
 */
import { z } from "zod";
import { ErrorCodeSchema } from "./errors.js";
import { ContextStateSchema, RequestIdSchema } from "./protocol.js";

export const PeerProcessSchema = z.object({
  pid: z.number().int(),
  executable: z.string().nullable(),
  cwd: z.string().nullable(),
  commandLine: z.array(z.string()).nullable(),
  /** Process start time in clock ticks since boot (Linux) — with pid it names one process. */
  startTime: z.number().nullable(),
});
export type PeerProcess = z.infer<typeof PeerProcessSchema>;

export const AgentConnectionSchema = z.object({
  connectionId: z.string(),
  clientId: z.string().nullable(),
  name: z.string().nullable(),
  connectedAt: z.string(),
  remotePort: z.number().int(),
  process: PeerProcessSchema.nullable(),
});
export type AgentConnection = z.infer<typeof AgentConnectionSchema>;

export const KeychainHealthSchema = z.object({
  ok: z.boolean(),
  code: ErrorCodeSchema.nullable(),
  message: z.string().nullable(),
});

export const LinkStatusSchema = z.object({
  version: z.string(),
  pid: z.number().int(),
  profile: z.string(),
  startedAt: z.string(),
  url: z.string(),
  port: z.number().int(),
  /** The port the Link was asked to use (31477 unless configured). */
  preferredPort: z.number().int(),
  /** True when the preferred port was taken and the Link listens elsewhere. */
  portFallback: z.boolean(),
  state: ContextStateSchema,
  /** The instance ID with all but its prefix and last four characters hidden. */
  instanceIdRedacted: z.string().nullable(),
  keychain: KeychainHealthSchema,
  agents: z.array(AgentConnectionSchema),
  discoveryFile: z.string(),
  logFile: z.string(),
});
export type LinkStatus = z.infer<typeof LinkStatusSchema>;

const Empty = z.object({}).strict();

/** The control API: method name -> params and result schemas. */
export const ControlMethods = {
  status: { params: Empty, result: LinkStatusSchema },
  setInstanceId: {
    params: z.object({ instanceId: z.string().trim().min(1).max(256) }).strict(),
    result: LinkStatusSchema,
  },
  logout: { params: Empty, result: LinkStatusSchema },
  shutdown: { params: Empty, result: z.object({ stopping: z.literal(true) }) },
} as const;
export type ControlMethod = keyof typeof ControlMethods;
export const CONTROL_METHOD_NAMES = Object.keys(ControlMethods) as ControlMethod[];
export type ControlParams<M extends ControlMethod> = z.infer<(typeof ControlMethods)[M]["params"]>;
export type ControlResult<M extends ControlMethod> = z.infer<(typeof ControlMethods)[M]["result"]>;

/** What the UI and CLI may ask of the Link; implemented over IPC (Electron) or the control socket. */
export type LinkApi = {
  [M in ControlMethod]: (params: ControlParams<M>) => Promise<ControlResult<M>>;
};

export const ControlAuthSchema = z.object({ type: z.literal("auth"), token: z.string().min(1).max(512) });
export const ControlCallSchema = z.object({
  type: z.literal("call"),
  id: RequestIdSchema,
  method: z.enum(CONTROL_METHOD_NAMES as [ControlMethod, ...ControlMethod[]]),
  params: z.unknown().default({}),
});
export const ControlClientMessageSchema = z.discriminatedUnion("type", [ControlAuthSchema, ControlCallSchema]);
export type ControlClientMessage = z.infer<typeof ControlClientMessageSchema>;

export const ControlEventSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("status"), status: LinkStatusSchema }),
]);
export type ControlEvent = z.infer<typeof ControlEventSchema>;

export const ControlServerMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("authenticated"), link: z.object({ version: z.string() }) }),
  z.object({ type: z.literal("result"), id: RequestIdSchema, result: z.unknown() }),
  z.object({
    type: z.literal("error"),
    id: RequestIdSchema.nullable(),
    code: ErrorCodeSchema,
    message: z.string(),
  }),
  z.object({ type: z.literal("event"), event: ControlEventSchema }),
]);
export type ControlServerMessage = z.infer<typeof ControlServerMessageSchema>;

/** The file (mode 0600, beside the discovery file) that lets the local CLI reach the control channel. */
export const ControlFileSchema = z.object({
  url: z.string(),
  token: z.string(),
  pid: z.number().int().positive(),
});
export type ControlFile = z.infer<typeof ControlFileSchema>;

/** Hides an instance ID except for its prefix and last four characters. */
export function redactInstanceId(id: string): string {
  const prefix = /^[a-z]+_/.exec(id)?.[0] ?? "";
  const tail = id.length - prefix.length > 8 ? id.slice(-4) : "";
  return `${prefix}${"•".repeat(6)}${tail}`;
}

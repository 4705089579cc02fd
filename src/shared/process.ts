/** The identity of a local process (the agent on the other end of a connection). */
import { z } from "zod";

export const PeerProcessSchema = z.object({
  pid: z.number().int(),
  executable: z.string().nullable(),
  cwd: z.string().nullable(),
  commandLine: z.array(z.string()).nullable(),
  /** Process start time in clock ticks since boot (Linux) — with pid it names one process. */
  startTime: z.number().nullable(),
});
export type PeerProcess = z.infer<typeof PeerProcessSchema>;

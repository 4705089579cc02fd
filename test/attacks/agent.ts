/**
 * The attacker's own agent: asks for a secret through the SDK, as any agent program of the user
 * would, and prints one JSON line per event: `{"pending": requestId}` when its request waits for the
 * person, then `{"delivered": value}` or `{"refused": code}`. The suite reads `pending` to aim its
 * attacks at this request, and requires that `delivered` never comes unless the person approved.
 *
 * usage: agent.ts VARIABLE CLIENT_ID [--no-wait]
 */
import { createPiperClient, PiperError } from "@piper-link/sdk";

const [variable = "ATTACK_SECRET", clientId = "attacker", flag] = process.argv.slice(2);
const say = (line: unknown): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const piper = createPiperClient({ clientId, fallbackToEnv: false });
try {
  const result = await piper.getSecret(variable, {
    reason: "same-user attack suite",
    wait: flag !== "--no-wait",
    timeoutMs: 170_000,
    onPending: ({ requestId }) => say({ pending: requestId }),
  });
  say({ delivered: result.value });
} catch (err) {
  say({ refused: err instanceof PiperError ? err.code : String(err) });
} finally {
  piper.close();
}

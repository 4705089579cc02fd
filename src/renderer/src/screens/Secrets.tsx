/**
 * Secrets by name. Values are write-only: typed into a masked field, sent once, never shown again
 * (the Link cannot read them back through this API at all). Each secret may name the hosts the
 * Link's calls may ever send it to (issue 14 item 3), set when adding or replacing it.
 */
import { KeyRound, Pencil, Plus, Trash2 } from "lucide-react";
import { useId, useState } from "react";
import type { SecretView } from "../../../shared/authority.js";
import { SecretHostsSchema, SecretNameSchema } from "../../../shared/authority.js";
import { displayText } from "../../../shared/display.js";
import {
  Button,
  ConfirmDialog,
  Dialog,
  EmptyState,
  ErrorBanner,
  Field,
  Loading,
  PageHeader,
  TableHead,
  TableRegion,
  Time,
  ui,
  useNotice,
} from "../components/ui.js";
import { useNow } from "../hooks.js";
import { isAuthority, useLinkAction, useLinkApi, useLinkData, type UiError } from "../link-context.js";
import { ProofFields, tryWithoutProof, useProofStep, withPresence, type Prover } from "../presence.js";

type Editing = { kind: "add" } | { kind: "replace"; secret: SecretView };

export function SecretsScreen() {
  const api = useLinkApi();
  const now = useNow(30_000);
  const secrets = useLinkData((a) => a.listSecrets({}), isAuthority("secret.changed"), []);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [deleting, setDeleting] = useState<SecretView | null>(null);
  const action = useLinkAction();
  const notify = useNotice();

  async function remove(secret: SecretView): Promise<void> {
    const done = await action.run("delete", () => api.deleteSecret({ name: secret.name }));
    setDeleting(null);
    if (done) {
      notify(`Deleted ${secret.name}. Grants that used it have ended.`);
      secrets.reload();
    }
  }

  const rows = (secrets.data ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section>
      <PageHeader
        title="Secrets"
        subtitle="Names and dates only. Values are encrypted by the authority and never shown again."
        actions={
          <Button variant="primary" icon={Plus} onClick={() => setEditing({ kind: "add" })}>
            Add secret
          </Button>
        }
      />
      {action.error ? <ErrorBanner error={action.error} onDismiss={action.clearError} /> : null}
      {secrets.error ? <ErrorBanner error={secrets.error} /> : null}
      {secrets.data === null && secrets.loading ? (
        <Loading what="secrets" />
      ) : rows.length === 0 ? (
        <EmptyState icon={KeyRound} title="No secrets yet">
          <p>
            Add the API keys and passwords your agents need. Name them like the variables agents ask for, e.g.
            OPENAI_API_KEY.
          </p>
        </EmptyState>
      ) : (
        <TableRegion label="Secrets table">
          <table className={ui.table} aria-label="Secrets">
            <TableHead columns={["Name", "Value", "Updated", "Created"]} actions />
            <tbody>
              {rows.map((x) => (
                <tr key={x.id}>
                  <td data-label="Name">
                    <span className={ui.mono}>{x.name}</span>
                    {x.hosts !== null ? (
                      <div className={ui.muted}>only to {x.hosts.length === 0 ? "no host" : x.hosts.join(", ")}</div>
                    ) : null}
                  </td>
                  <td className={ui.muted} aria-label="hidden value" data-label="Value">
                    ••••••••
                  </td>
                  <td data-label="Updated">
                    <Time ms={x.updatedAt} now={now} />
                  </td>
                  <td data-label="Created">
                    <Time ms={x.createdAt} now={now} />
                  </td>
                  <td>
                    <div className={ui.rowActions}>
                      <Button
                        small
                        icon={Pencil}
                        onClick={() => setEditing({ kind: "replace", secret: x })}
                        aria-label={`Replace the value of ${x.name}`}
                      >
                        Replace
                      </Button>
                      <Button
                        small
                        variant="danger"
                        icon={Trash2}
                        onClick={() => setDeleting(x)}
                        aria-label={`Delete ${x.name}`}
                      >
                        Delete
                      </Button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {editing ? (
        <SecretDialog
          editing={editing}
          onClose={() => setEditing(null)}
          onSaved={(name, hostsOnly) => {
            setEditing(null);
            notify(
              hostsOnly
                ? `Changed where ${name} may be sent.`
                : editing.kind === "add"
                  ? `Saved ${name}. Its value is encrypted and will not be shown again.`
                  : `Replaced the value of ${name}.`,
            );
            secrets.reload();
          }}
        />
      ) : null}
      {deleting ? (
        <ConfirmDialog
          title={`Delete ${deleting.name}?`}
          action="Delete"
          icon={Trash2}
          busy={action.busy !== null}
          onConfirm={() => void remove(deleting)}
          onCancel={() => setDeleting(null)}
        >
          <p>Agents with grants for it stop receiving it. This cannot be undone.</p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/** `onSaved(name, hostsOnly)`: saved; `hostsOnly` when only the host list changed (the value was left empty). */
function SecretDialog({
  editing,
  onClose,
  onSaved,
}: {
  editing: Editing;
  onClose: () => void;
  onSaved: (name: string, hostsOnly: boolean) => void;
}) {
  const api = useLinkApi();
  const id = useId();
  const [name, setName] = useState(editing.kind === "replace" ? editing.secret.name : "");
  const [value, setValue] = useState("");
  const initialHosts = editing.kind === "replace" ? (editing.secret.hosts ?? []).join(" ") : "";
  const [hosts, setHosts] = useState(initialHosts);
  const action = useLinkAction();
  const [invalid, setInvalid] = useState<UiError | null>(null);
  const nameCheck = SecretNameSchema.safeParse(name.trim());
  const nameError = name.length > 0 && !nameCheck.success ? "Use letters, digits, _ . - only (up to 128)." : null;

  const hostList = hosts
    .split(/[\s,]+/)
    .filter((h) => h.length > 0)
    .map((h) => h.toLowerCase());
  const hostCheck = SecretHostsSchema.safeParse(hostList);
  const hostsError =
    hostList.length > 0 && !hostCheck.success
      ? "Host names such as api.openai.com or *.example.com, at most 32."
      : null;
  // Replacing with an empty value changes only the hosts (the value stays as it is).
  const hostsOnly = editing.kind === "replace" && value.length === 0 && hosts !== initialHosts;

  const proof = useProofStep();

  async function save(prove: Prover | null): Promise<void> {
    if (!nameCheck.success || (value.length === 0 && !hostsOnly) || hostsError !== null) {
      setInvalid({
        code: "bad_request",
        message: hostsError ?? (!nameCheck.success ? "Enter a valid name." : "Enter the value."),
      });
      return;
    }
    setInvalid(null);
    const list = hostCheck.success ? hostCheck.data : null;
    const secretName = nameCheck.data;
    // Hosts are sent only when they say something: a new secret without them, or a new value with
    // them unchanged, leaves them as they are (an explicit "any host" is a widening the Link asks you to prove).
    const hostsChanged = editing.kind === "add" ? list !== null : hosts !== initialHosts;
    const hostsPart = hostsChanged ? { hosts: list } : {};
    // Widening where a secret may be sent may need a proof: the Link says so. The proof covers the
    // name and the hosts (the value is not part of what it confirms).
    const outcome = { went: false };
    const ran = await action.run("save", async () => {
      outcome.went = hostsOnly
        ? await tryWithoutProof(
            proof,
            prove,
            { method: "setSecretHosts", params: { name: secretName, hosts: list } },
            (presence) => api.setSecretHosts({ name: secretName, hosts: list, ...withPresence(presence) }),
          )
        : await tryWithoutProof(
            proof,
            prove,
            { method: "setSecret", params: { name: secretName, value, ...hostsPart } },
            (presence) => api.setSecret({ name: secretName, value, ...hostsPart, ...withPresence(presence) }),
          );
    });
    proof.clear();
    if (ran && outcome.went) {
      setValue("");
      onSaved(nameCheck.data, hostsOnly);
    }
  }

  const shown = invalid ?? proof.describe(action.error);
  return (
    <Dialog
      title={editing.kind === "add" ? "Add a secret" : `Replace the value of ${editing.secret.name}`}
      onClose={onClose}
      onSubmit={() => void save(proof.asking ? () => Promise.resolve(proof.typed()) : null)}
      error={shown}
      actions={
        <>
          {proof.asking ? <Button onClick={proof.back}>Back</Button> : <Button onClick={onClose}>Cancel</Button>}
          <Button variant="primary" type="submit" busy={action.busy !== null}>
            {proof.asking ? "Confirm and save" : "Save"}
          </Button>
        </>
      }
    >
      {proof.asking ? (
        <ProofFields
          id={`${id}-proof`}
          step={proof}
          why={`Confirm it is you: change where ${displayText(name.trim())} may be sent.`}
          busy={action.busy !== null}
          onPasskey={() => void save((c) => proof.passkey(c))}
        />
      ) : null}
      {!proof.asking && editing.kind === "add" ? (
        <Field label="Name" id={`${id}-name`} hint="As agents ask for it, e.g. OPENAI_API_KEY." error={nameError}>
          <input
            id={`${id}-name`}
            className={ui.input}
            value={name}
            onChange={(e) => setName(e.target.value)}
            autoComplete="off"
            spellCheck={false}
            autoFocus
            aria-describedby={`${id}-name-hint`}
          />
        </Field>
      ) : null}
      {proof.asking ? null : (
        <>
          <Field
            label="Value"
            id={`${id}-value`}
            hint={
              editing.kind === "replace"
                ? "Write-only: it is encrypted and never shown again. Leave empty to change only the hosts."
                : "Write-only: it is encrypted and never shown again."
            }
          >
            <input
              id={`${id}-value`}
              className={ui.input}
              type="password"
              value={value}
              onChange={(e) => setValue(e.target.value)}
              autoComplete="new-password"
              spellCheck={false}
              autoFocus={editing.kind === "replace"}
              aria-describedby={`${id}-value-hint`}
            />
          </Field>
          <Field
            label="Only send it to (optional)"
            id={`${id}-hosts`}
            hint="Hosts Piper Link's calls may send it to, separated by spaces; empty: any host a grant allows. Agents that read the value are not limited by this."
            error={hostsError}
          >
            <input
              id={`${id}-hosts`}
              className={ui.input}
              value={hosts}
              onChange={(e) => setHosts(e.target.value)}
              autoComplete="off"
              spellCheck={false}
              placeholder="api.openai.com"
              aria-describedby={`${id}-hosts-hint`}
            />
          </Field>
        </>
      )}
    </Dialog>
  );
}

/**
 * First run / signed out: one clear button. Sign-in happens in the system browser at the authority
 * (PKCE); without a browser on this machine, a device code can be entered on any other device. When
 * the Link runs where the person sees no screen (an SSH session, a server reached through `ssh -L`),
 * the code comes first: the browser flow's redirect to the Link's loopback would not reach it.
 */
import { ExternalLink, KeyRound, Smartphone } from "lucide-react";
import { useRef, useState } from "react";
import type { ControlResult, LinkStatus } from "../../../shared/control.js";
import { Banner, Button, ErrorBanner, Spinner } from "../components/ui.js";
import { toUiError, useLinkApi, type UiError } from "../link-context.js";
import s from "./screens.module.css";

type Attempt = ControlResult<"loginStart">;

export function SignInScreen({ status }: { status: LinkStatus }) {
  const api = useLinkApi();
  const [attempt, setAttempt] = useState<Attempt | null>(null);
  const [starting, setStarting] = useState<"browser" | "device" | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const current = useRef<string | null>(null);

  async function start(device: boolean): Promise<void> {
    setStarting(device ? "device" : "browser");
    setError(null);
    try {
      const next = await api.loginStart({ device });
      current.current = next.loginId;
      setAttempt(next);
      if (next.authorizeUrl !== null) window.open(next.authorizeUrl, "_blank", "noopener,noreferrer");
      // Resolves when the person finishes in the browser; the status event then shows the main window.
      await api.loginWait({ loginId: next.loginId, timeoutMs: 10 * 60_000 });
    } catch (err) {
      if (current.current !== null) setError(toUiError(err));
      setAttempt(null);
    } finally {
      setStarting(null);
    }
  }

  function cancel(): void {
    current.current = null;
    setAttempt(null);
    setStarting(null);
  }

  const authority = status.authority;
  // The Link's machine shows the person nothing (SSH, a server): a browser redirect back to it is a dead end.
  const elsewhere = status.signInFlow === "device";
  return (
    <main className={s.signin}>
      <div className={s.signinCard}>
        <div className={s.logo} aria-hidden="true">
          <KeyRound size={30} />
        </div>
        <h1>Sign in to Piper Link</h1>
        {!status.keychain.ok ? (
          <Banner tone="warning" icon={KeyRound}>
            <p>{status.keychain.message ?? "The keychain is not available."}</p>
          </Banner>
        ) : null}
        {authority?.signInError ? (
          <Banner tone="warning" icon={KeyRound}>
            <p>{authority.signInError}</p>
          </Banner>
        ) : null}
        {error ? <ErrorBanner error={error} onDismiss={() => setError(null)} /> : null}
        {attempt === null ? (
          <>
            <p>Sign in once and your agents on this machine can ask you for secrets. You approve each one here.</p>
            {elsewhere ? (
              <>
                <p data-testid="sign-in-elsewhere">
                  Piper Link runs on a machine without a screen you see (an SSH session or a server), so a browser
                  sign-in could not come back to it. Sign in with a code on any device instead.
                </p>
                <Button
                  variant="primary"
                  className={s.wide}
                  busy={starting === "device"}
                  disabled={starting !== null || authority === null}
                  onClick={() => void start(true)}
                >
                  Sign in with a code
                </Button>
                <button
                  type="button"
                  className={s.linkButton}
                  disabled={starting !== null || authority === null}
                  onClick={() => void start(false)}
                >
                  Use a browser on the Link&apos;s machine instead
                </button>
              </>
            ) : (
              <>
                <Button
                  variant="primary"
                  className={s.wide}
                  busy={starting === "browser"}
                  disabled={starting !== null || authority === null}
                  onClick={() => void start(false)}
                >
                  Sign in
                </Button>
                <button
                  type="button"
                  className={s.linkButton}
                  disabled={starting !== null || authority === null}
                  onClick={() => void start(true)}
                >
                  No browser on this machine? Use a code instead
                </button>
              </>
            )}
            {authority === null ? (
              <p>This Link was started without an authority.</p>
            ) : (
              <p className={s.address}>{authority.url}</p>
            )}
          </>
        ) : attempt.kind === "browser" ? (
          <>
            <p role="status" aria-live="polite">
              <Spinner /> Finish signing in in your browser…
            </p>
            {attempt.authorizeUrl !== null ? (
              <a href={attempt.authorizeUrl} target="_blank" rel="noreferrer">
                Open the sign-in page again <ExternalLink size={13} aria-hidden="true" />
              </a>
            ) : null}
            <Button onClick={cancel}>Cancel</Button>
          </>
        ) : (
          <>
            <p>
              <Smartphone size={16} aria-hidden="true" /> On any device, open{" "}
              <span className={s.address}>{attempt.verificationUri}</span> and enter:
            </p>
            <div className={s.userCode} aria-label="Your code">
              {attempt.userCode}
            </div>
            <p role="status" aria-live="polite">
              <Spinner /> Waiting for you to enter the code…
            </p>
            <Button onClick={cancel}>Cancel</Button>
          </>
        )}
      </div>
    </main>
  );
}

/** The small design system of the window: buttons, banners, dialogs, empty states, tables. */
import { CircleCheck, LoaderCircle, TriangleAlert, X, type LucideIcon } from "lucide-react";
import {
  createContext,
  Fragment,
  useCallback,
  useContext,
  useEffect,
  useId,
  useRef,
  useState,
  type ButtonHTMLAttributes,
  type ReactNode,
} from "react";
import { localDateTime, relativeTime } from "../../../shared/wording.js";
import type { UiError } from "../link-context.js";
import s from "./ui.module.css";

type Variant = "default" | "primary" | "danger" | "dangerSolid";

export function Button({
  variant = "default",
  small = false,
  busy = false,
  icon: Icon,
  children,
  className,
  disabled,
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & {
  variant?: Variant;
  small?: boolean;
  busy?: boolean;
  icon?: LucideIcon;
}) {
  const classes = [s.button, variant !== "default" ? s[variant] : undefined, small ? s.small : undefined, className]
    .filter(Boolean)
    .join(" ");
  return (
    <button
      type="button"
      className={classes}
      disabled={disabled === true || busy}
      aria-busy={busy || undefined}
      {...rest}
    >
      {busy ? <Spinner size={14} /> : Icon ? <Icon size={15} aria-hidden="true" /> : null}
      {children}
    </button>
  );
}

export function Spinner({ size = 16, label }: { size?: number; label?: string }) {
  return (
    <LoaderCircle
      size={size}
      className={s.spinner}
      aria-hidden={label === undefined}
      aria-label={label}
      role={label === undefined ? undefined : "img"}
    />
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <div className={s.loading} role="status" aria-live="polite">
      <Spinner />
      Loading {what}…
    </div>
  );
}

/** A failure: its sentence as the text, its stable code only as a small badge (for reports and search). */
export function ErrorBanner({ error, onDismiss }: { error: UiError; onDismiss?: () => void }) {
  return (
    <div className={`${s.banner ?? ""} ${s.bannerError ?? ""}`} role="alert">
      <TriangleAlert size={18} aria-hidden="true" />
      <div>
        <p>
          {error.message}
          {error.code !== "error" ? (
            <>
              {" "}
              <span className={s.bannerCode} title="Error code">
                <span className="visually-hidden">(error code </span>
                {error.code}
                <span className="visually-hidden">)</span>
              </span>
            </>
          ) : null}
        </p>
      </div>
      {onDismiss ? (
        <button type="button" className={s.bannerClose} onClick={onDismiss} aria-label="Dismiss">
          <X size={16} aria-hidden="true" />
        </button>
      ) : null}
    </div>
  );
}

export function Banner({
  tone,
  icon: Icon,
  children,
}: {
  tone: "warning" | "info";
  icon: LucideIcon;
  children: ReactNode;
}) {
  return (
    <div
      className={`${s.banner ?? ""} ${tone === "warning" ? (s.bannerWarning ?? "") : (s.bannerInfo ?? "")}`}
      role="status"
    >
      <Icon size={18} aria-hidden="true" />
      <div>{children}</div>
    </div>
  );
}

export function EmptyState({ icon: Icon, title, children }: { icon: LucideIcon; title: string; children: ReactNode }) {
  return (
    <div className={s.empty}>
      <Icon size={28} aria-hidden="true" />
      <h2>{title}</h2>
      {children}
    </div>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: string; subtitle: string; actions?: ReactNode }) {
  return (
    <header className={s.pageHeader}>
      <div>
        <h1>{title}</h1>
        <p>{subtitle}</p>
      </div>
      {actions}
    </header>
  );
}

export function Badge({
  tone = "neutral",
  children,
  label,
}: {
  tone?: "neutral" | "accent" | "success" | "danger" | "warning";
  children: ReactNode;
  label?: string;
}) {
  const toneClass = {
    neutral: undefined,
    accent: s.badgeAccent,
    success: s.badgeSuccess,
    danger: s.badgeDanger,
    warning: s.badgeWarning,
  }[tone];
  return (
    <span className={[s.badge, toneClass].filter(Boolean).join(" ")} aria-label={label}>
      {children}
    </span>
  );
}

/**
 * A modal dialog on the native <dialog> element: it traps focus, closes on Escape, and returns
 * focus to what opened it. `onClose` runs however it is closed. The title and the `actions` row
 * stay in view while the body scrolls (a long form or a small window never pushes the buttons out
 * of the dialog); `error`, when given, sits just above the actions, so it is seen where the person
 * is about to click, whatever the body's scroll position.
 */
export function Dialog({
  title,
  onClose,
  children,
  actions,
  onSubmit,
  error,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  actions: ReactNode;
  onSubmit?: () => void;
  error?: UiError | null | undefined;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    dialog.showModal();
    return () => {
      dialog.close();
      opener?.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className={s.dialog}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <form
        method="dialog"
        className={s.dialogBody}
        onSubmit={(e) => {
          e.preventDefault();
          onSubmit?.();
        }}
      >
        <h2 id={titleId} className={s.dialogTitle}>
          {title}
        </h2>
        <div className={s.dialogScroll}>{children}</div>
        {error ? (
          <div className={s.dialogError}>
            <ErrorBanner error={error} />
          </div>
        ) : null}
        <div className={s.dialogActions}>{actions}</div>
      </form>
    </dialog>
  );
}

/** A table's header row; `actions` adds a last column (labelled for screen readers) for row buttons. */
export function TableHead({ columns, actions = false }: { columns: string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th scope="col" key={c}>
            {c}
          </th>
        ))}
        {actions ? (
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        ) : null}
      </tr>
    </thead>
  );
}

/** "Are you sure?" for a destructive action: Cancel has the focus, the action is one step away. */
export function ConfirmDialog({
  title,
  action,
  icon,
  busy,
  onConfirm,
  onCancel,
  children,
}: {
  title: string;
  action: string;
  icon: LucideIcon;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  children: ReactNode;
}) {
  return (
    <Dialog
      title={title}
      onClose={onCancel}
      onSubmit={onConfirm}
      actions={
        <>
          <Button onClick={onCancel} autoFocus>
            Cancel
          </Button>
          <Button variant="dangerSolid" type="submit" busy={busy} icon={icon}>
            {action}
          </Button>
        </>
      }
    >
      {children}
    </Dialog>
  );
}

export function Field({
  label,
  hint,
  error,
  children,
  id,
}: {
  label: string;
  hint?: string | undefined;
  error?: string | null;
  children: ReactNode;
  id: string;
}) {
  return (
    <div className={s.field}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint !== undefined ? (
        <p className={s.hint} id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className={s.fieldError} role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/**
 * A time as the person reads it: relative when recent ("3 min ago"), the absolute local date-time
 * (their time zone) in the tooltip and in `dateTime` for assistive technology and copying.
 */
export function Time({ ms, now }: { ms: number; now: number }) {
  return (
    <time dateTime={new Date(ms).toISOString()} title={localDateTime(ms)}>
      {relativeTime(ms, now)}
    </time>
  );
}

/**
 * A table that may be wider than its screen (a small window): it scrolls sideways inside its own
 * region instead of pushing the page wider. Focusable, so the keyboard can scroll it.
 */
/**
 * `text` with line-break opportunities (<wbr>) after each _ - . / : so an identifier or a path
 * (`AWS_SECRET_ACCESS_KEY`, `/work/app/agent.py`) wraps at its parts instead of mid-word or not at
 * all. The text itself (what is copied, what a screen reader reads) is unchanged.
 */
export function Breakable({ text }: { text: string }) {
  const parts = text.split(/(?<=[_\-./:])/);
  return (
    <>
      {parts.map((part, i) => (
        <Fragment key={i}>
          {i > 0 ? <wbr /> : null}
          {part}
        </Fragment>
      ))}
    </>
  );
}

export function TableRegion({ label, children }: { label: string; children: ReactNode }) {
  return (
    // A scrollable region must be reachable by keyboard (axe: scrollable-region-focusable).
    <div className={s.tableRegion} role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

interface Notice {
  id: number;
  text: string;
}

const NoticeContext = createContext<((text: string) => void) | null>(null);

/**
 * Confirmations after an action ("Approved …", "Revoked …", "Saved …"): shown in a polite live
 * region that exists from the start (screen readers announce changes, not new regions), and gone
 * after a few seconds or when dismissed.
 */
export function NoticeProvider({ children }: { children: ReactNode }) {
  const [notice, setNotice] = useState<Notice | null>(null);
  const next = useRef(0);
  const notify = useCallback((text: string) => setNotice({ id: ++next.current, text }), []);
  useEffect(() => {
    if (notice === null) return;
    const timer = setTimeout(() => setNotice((n) => (n?.id === notice.id ? null : n)), 6000);
    return () => clearTimeout(timer);
  }, [notice]);
  return (
    <NoticeContext.Provider value={notify}>
      {children}
      <div className={s.noticeRegion} role="status" aria-live="polite" aria-atomic="true" data-notices="">
        {notice !== null ? (
          <div className={s.notice} key={notice.id}>
            <CircleCheck size={18} aria-hidden="true" />
            <p>{notice.text}</p>
            <button type="button" className={s.bannerClose} onClick={() => setNotice(null)} aria-label="Dismiss">
              <X size={16} aria-hidden="true" />
            </button>
          </div>
        ) : null}
      </div>
    </NoticeContext.Provider>
  );
}

/** `notify(text)` shows a confirmation; throws outside <NoticeProvider>. */
export function useNotice(): (text: string) => void {
  const notify = useContext(NoticeContext);
  if (notify === null) throw new Error("useNotice must be used inside <NoticeProvider>.");
  return notify;
}

export const ui = s;

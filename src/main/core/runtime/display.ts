/**
 * Whether the person sees what this machine shows: a browser opened here, or a loopback redirect
 * back to here. Over SSH or on a bare server they do not, and sign-in leads with a code instead.
 */

/**
 * True when a browser opened here would be seen by the person: false in an SSH session
 * (`SSH_CONNECTION` set: the browser would open on the remote machine's display, if any) and on
 * Linux without `DISPLAY` or `WAYLAND_DISPLAY` (a bare server, a console). Pure: the caller passes
 * the environment and platform.
 */
export function hasDisplay(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): boolean {
  if (env["SSH_CONNECTION"]) return false;
  if (platform === "linux" && !env["DISPLAY"] && !env["WAYLAND_DISPLAY"]) return false;
  return true;
}

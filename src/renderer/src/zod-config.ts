/**
 * Imported first by the window's entry: zod 4 probes for `new Function` to compile fast parsers,
 * and under the window's CSP (no 'unsafe-eval') that probe is reported as a CSP violation on every
 * load. Jitless parsing needs no eval; the window's messages are small, so speed is unchanged.
 */
import { z } from "zod";

z.config({ jitless: true });

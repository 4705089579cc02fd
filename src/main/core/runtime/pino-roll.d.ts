// pino-roll ships no type declarations; these describe the options this project uses
// (see node_modules/pino-roll/pino-roll.js for the full set).
declare module "pino-roll" {
  /** The part of the returned sonic-boom stream this project uses. */
  interface RollStream {
    write(data: string): boolean;
    flushSync(): void;
  }
  interface PinoRollOptions {
    /** Base path; the file number and `extension` are appended (`link` -> `link.1.log`). */
    file: string;
    extension?: string;
    /** Rotate when a file reaches this size (`5m`, `512k`). */
    size?: string | number;
    frequency?: string | number;
    /** Keep this many old files. */
    limit?: { count: number };
    /** Keep `current.log` pointing at the file being written. */
    symlink?: boolean;
    mkdir?: boolean;
    sync?: boolean;
  }
  export default function roll(options: PinoRollOptions): Promise<RollStream>;
}

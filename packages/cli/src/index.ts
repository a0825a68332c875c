/**
 * @keyhole/cli as a library: the `keyhole` command's entry point, for embedding and tests.
 * The command itself is `bin/keyhole.js`.
 */
export { runCli, VERSION } from "./cli.js";
export type { Io } from "./io.js";

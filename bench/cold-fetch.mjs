// One agent process for bench/cold-start.mjs: import the SDK, read the token file named in
// KEYHOLE_TOKEN_FILE, fetch one secret, exit. Kept in bench/ so `@keyhole/sdk` resolves from the
// repository's node_modules, as an installed dependency would.
import { Vault } from "@keyhole/sdk";

const vault = new Vault();
const value = await vault.get("demo");
vault.close();
if (value.length !== 64) process.exit(1);

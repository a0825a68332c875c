// The database URL of `--database-url`: checked without repeating it, and start-up failures told
// as one line naming only host:port and a code (no PostgreSQL needed here; the real failures
// against a real server are in multi-server.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isKeyholeError, KeyholeError } from "@keyhole/core";
import {
  checkDatabaseUrl,
  checkSchemaName,
  databaseStartupError,
  driverTarget,
} from "./database-url.js";
import { withStorageCause } from "./store/storage-errors.js";

const configError = (error: unknown) => isKeyholeError(error) && error.code === "config_error";

describe("database URL", () => {
  it("names host:port only, with the driver's defaults and PGHOST/PGPORT fallbacks", () => {
    const cases: [string, Record<string, string>, string][] = [
      ["postgres://u:pw@db.internal:6543/keyhole?sslmode=verify-full", {}, "db.internal:6543"],
      ["postgresql://u:p%40ss@db/keyhole", {}, "db:5432"],
      ["postgres://[::1]:5433/keyhole", {}, "[::1]:5433"],
      ["postgres:///keyhole", { PGHOST: "pg.local", PGPORT: "5999" }, "pg.local:5999"],
      ["postgres:///keyhole", {}, "localhost:5432"],
    ];
    for (const [url, env, endpoint] of cases) {
      assert.deepEqual(checkDatabaseUrl(url, env), { url, endpoint });
    }
  });

  it("refuses other schemes and URLs the driver would split its own way, never quoting them", () => {
    for (const url of [
      "mysql://u:hunter2@db/x",
      "POSTGRES://u:hunter2@db/x",
      "postgres:/u:hunter2@db/x",
      "postgres://u:hunter2/x@db/x",
      "postgres://u:hunter2?x@db/x",
      "postgres://u:hunter2@h1:5432,h2:5433/x",
    ]) {
      assert.throws(
        () => checkDatabaseUrl(url, {}),
        (error: unknown) => configError(error) && !(error as Error).message.includes("hunter2"),
        url,
      );
    }
  });

  it("refuses query parameters that would override the server's connection settings", () => {
    const ok = "postgres://u:pw@db/k?sslmode=verify-full&target_session_attrs=primary";
    assert.equal(checkDatabaseUrl(ok, {}).endpoint, "db:5432");
    const cases: [string, string][] = [
      ["search_path=public", '"search_path"'],
      // The driver would pass it to PostgreSQL as a setting, which refuses the connection.
      ["sslrootcert=system", '"sslrootcert"'],
      ["sslmode=verify-ca", "sslmode must be one of"],
      ["sslmode=require&sslmode=disable", "sslmode more than once"],
      ["target_session_attrs=any", "target_session_attrs must be one of"],
      ["target_session_attrs=standby", "target_session_attrs must be one of"],
      ["sslmode=require&statement_timeout=0", '"statement_timeout"'],
      ["options=-c%20lock_timeout%3D0", '"options"'],
      ["max=1000", '"max"'],
      ["Hunter2=x", "parameter is"],
      // What follows a stray ? in a password looks like a parameter: never repeated.
      ["hunterpart&x=1", "parameter is"],
    ];
    for (const [query, named] of cases) {
      assert.throws(
        () => checkDatabaseUrl(`postgres://u:hunter2@db/k?${query}`, {}),
        (error: unknown) =>
          configError(error) &&
          (error as Error).message.includes(named) &&
          !(error as Error).message.toLowerCase().includes("hunter") &&
          !(error as Error).message.includes("Hunter2"),
        query,
      );
    }
  });

  it("gives the driver the checked URL's parts, never the URL to parse its own way", () => {
    const base = { host: ["db.internal"], port: [6543], user: "u", database: "keyhole" };
    const cases: [string, Record<string, string>, object][] = [
      [
        "postgres://u:p%40ss@db.internal:6543/keyhole?sslmode=verify-full",
        {},
        // verify-full: the certificate is checked against the host named, IP address or not.
        { ...base, password: "p@ss", ssl: { host: "db.internal" } },
      ],
      ["postgres://u@db.internal:6543/keyhole?sslmode=disable", {}, { ...base, ssl: false }],
      [
        "postgresql://u@[::1]:5433/k?target_session_attrs=primary",
        {},
        {
          host: ["::1"],
          port: [5433],
          user: "u",
          database: "k",
          ssl: false,
          target_session_attrs: "primary",
        },
      ],
      [
        "postgres:///k",
        { PGHOST: "pg.local", PGPORT: "5999" },
        { host: ["pg.local"], port: [5999], database: "k", ssl: false },
      ],
      [
        "postgres://u@%2Fvar%2Frun%2Fpostgresql/k",
        {},
        {
          host: ["/var/run/postgresql"],
          port: [5432],
          path: "/var/run/postgresql/.s.PGSQL.5432",
          user: "u",
          database: "k",
          ssl: false,
        },
      ],
      // An unencoded @ in the password: the last @ ends it, for the driver as for the check.
      [
        "postgres://u:p@x,y@db.internal/k",
        {},
        {
          host: ["db.internal"],
          port: [5432],
          user: "u",
          password: "p@x,y",
          database: "k",
          ssl: false,
        },
      ],
    ];
    for (const [url, env, expected] of cases)
      assert.deepEqual(driverTarget(url, env), expected, url);
  });

  it("refuses what the driver would read otherwise: fragments, several hosts, bad ports", () => {
    for (const url of [
      // Once the driver's own parsing had turned this fragment back into settings.
      "postgres://u:hunter2@db.example.com,%23/k?sslmode=db.example.com,#&search_path=evil",
      "postgres://u:hunter2@db/k#x",
      "postgres://u:hunter2@h1,h2/k",
      "postgres://u:hunter2@db:0/k",
      "postgres://u:hunter2@db/k/extra",
      "postgres://u:%E0%A4%A@db/k",
      // A NUL would add settings to the driver's start-up message.
      "postgres://u:hunter2@db/k%00search_path%00evil",
      "postgres://u%00options:hunter2@db/k",
      // An unencoded / in the password: host "u", port 2024, "database" hunter2@db.
      "postgres://u:2024/hunter2@db/k",
    ]) {
      assert.throws(
        () => driverTarget(url, {}),
        (error: unknown) => configError(error) && !(error as Error).message.includes("hunter2"),
        url,
      );
    }
  });

  it("takes sslmode from PGSSLMODE or PGSSL when the URL names none, checked the same way", () => {
    const url = "postgres://u@[::1]:5433/k";
    assert.equal(driverTarget(url, {}).ssl, false);
    assert.equal(driverTarget(url, { PGSSL: "require" }).ssl, "require");
    assert.deepEqual(driverTarget(url, { PGSSLMODE: "verify-full", PGSSL: "disable" }).ssl, {
      host: "::1",
    });
    assert.equal(driverTarget(`${url}?sslmode=disable`, { PGSSLMODE: "require" }).ssl, false);
    assert.throws(() => driverTarget(url, { PGSSLMODE: "verify-ca" }), configError);
  });

  it("accepts only plain lower-case schema names (they travel in search_path)", () => {
    for (const ok of ["keyhole", "_k", "t_0123abcd", "a".repeat(63)]) checkSchemaName(ok);
    for (const bad of ["", "Keyhole", "9a", "a,public", "a b", '"a"', "a".repeat(64)]) {
      assert.throws(() => checkSchemaName(bad), configError, bad);
    }
  });

  it("turns start-up failures into one line with host:port and a code, never a message", () => {
    const leaky = (code: string) =>
      Object.assign(new Error("password authentication failed: hunter2 at postgres://x"), { code });
    const cases: [unknown, string, RegExp][] = [
      [
        withStorageCause(new KeyholeError("unavailable", "retry shortly"), "PG_ECONNREFUSED"),
        "unavailable",
        /^cannot reach the database at db:5432 \(PG_ECONNREFUSED\); check that PostgreSQL/,
      ],
      [leaky("ENOTFOUND"), "unavailable", /^cannot reach the database at db:5432 \(PG_ENOTFOUND\)/],
      [leaky("CONNECT_TIMEOUT"), "unavailable", /\(PG_CONNECT_TIMEOUT\)/],
      [leaky("28P01"), "config_error", /refused the user name or password .*\(PG_28P01\)$/],
      [leaky("3D000"), "config_error", /database named in the URL does not exist at db:5432/],
      [leaky("3F000"), "config_error", /--database-schema does not exist .*create it first/],
      [leaky("42501"), "config_error", /may not create or use Keyhole's tables/],
      [leaky("SELF_SIGNED_CERT_IN_CHAIN"), "config_error", /^cannot use the database at db:5432/],
      [leaky("not a code: hunter2"), "config_error", /^cannot use the database at db:5432$/],
      [new Error("hunter2"), "config_error", /^cannot use the database at db:5432$/],
      [
        withStorageCause(new KeyholeError("storage_unavailable"), "PG_53100"),
        "storage_unavailable",
        /^the database at db:5432 cannot store data \(PG_53100\)$/,
      ],
    ];
    for (const [error, code, pattern] of cases) {
      const mapped = databaseStartupError(error, "db:5432");
      assert.equal(mapped.code, code, mapped.message);
      assert.match(mapped.message, pattern);
      assert.doesNotMatch(mapped.message, /hunter2|postgres:\/\/|\n/);
    }
  });
});

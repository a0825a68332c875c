/**
 * The PostgreSQL server the tests use: `scripts/test.mjs` starts one (scripts/pg-server.mjs) and
 * passes its URL in KEYHOLE_TEST_DATABASE_URL. Under CI a missing server is an error, never a
 * skip: the PostgreSQL adapter must be tested on every run.
 */

/** The test server's URL, or null when there is none (outside CI only). */
export function pgTestUrl(): string | null {
  const url = process.env.KEYHOLE_TEST_DATABASE_URL;
  if (url !== undefined && url !== "") return url;
  if (process.env.CI === "true") {
    throw new Error("CI must run the PostgreSQL tests, but KEYHOLE_TEST_DATABASE_URL is not set");
  }
  return null;
}

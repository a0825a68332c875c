/** The server's version, reported by `GET /v1/info` (kept in step with package.json). */
export const SERVER_VERSION = "0.1.0";

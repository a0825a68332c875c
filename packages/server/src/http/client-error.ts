/**
 * Requests Node's HTTP parser refuses before the app sees them (a raw non-ASCII byte in the
 * target, a malformed header, headers too large, too slow): answered like every other error, as
 * JSON with a code and the usual headers, instead of Node's bare `400` with no body.
 */
import type { Socket } from "node:net";

const ANSWERS: Readonly<Record<string, readonly [number, string, string]>> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "the request took too long to arrive"],
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "the request headers are too large",
  ],
};
const MALFORMED = [400, "Bad Request", "the request is not valid HTTP"] as const;

/** A `clientError` listener for an `http.Server`. */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // Nothing to answer on a connection that is gone, or one still writing an earlier response
  // (`_httpMessage` is how Node's own default handler tells; writing now would corrupt it).
  if (
    error.code === "ECONNRESET" ||
    !socket.writable ||
    (socket as { _httpMessage?: unknown })._httpMessage
  ) {
    socket.destroy();
    return;
  }
  const [status, reason, message] = ANSWERS[error.code ?? ""] ?? MALFORMED;
  const body = JSON.stringify({ error: { code: "bad_request", message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      "content-type: application/json; charset=utf-8\r\n" +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      "cache-control: no-store\r\n" +
      "x-content-type-options: nosniff\r\n" +
      "connection: close\r\n\r\n" +
      body,
  );
}

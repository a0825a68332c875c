/**
 * Human output: aligned tables, times and sizes. Everything printed here may come from the
 * server (names, user agents, audit details), so it is stripped of control characters first:
 * a crafted user agent must not be able to move the cursor or rewrite the owner's terminal.
 */

/** Replaces C0/C1 control characters and bidi/format controls with `?`. */
export function sanitize(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}]/gu, "?");
}

/** A time in ms as `2026-03-10 14:02:11Z`, or `-` when absent. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms === 0 || !Number.isFinite(ms)) return "-";
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/** A byte count as `123 B`, `4.0 KiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A grant's read budget: `unlimited`, or `N of M` reads left. */
export function formatReadsLeft(grant: { max_uses: number; uses: number }): string {
  if (grant.max_uses === 0) return "unlimited";
  return `${Math.max(0, grant.max_uses - grant.uses)} of ${grant.max_uses}`;
}

/**
 * Renders rows under upper-case headers, columns padded to the widest cell, two spaces apart,
 * with no trailing spaces. Cells are sanitised. An empty table prints only the header.
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map(sanitize))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";

/** A built file served as is. */
export interface Asset {
  body: Uint8Array;
  contentType: string;
  /** Vite's hashed files under assets/ never change, so browsers may cache them for good. */
  immutable: boolean;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** Files bigger than this are not loaded (the page is a few tens of kB; anything large is a mistake). */
const MAX_ASSET_BYTES = 8 << 20;

/**
 * Reads every file of the built page (`dir`, Vite's output) into a table keyed by URL path ("/index.html",
 * "/assets/index-abc.js"). Serving looks paths up in this table only, so a request can never reach a file
 * outside the build, whatever `..`, encoded slashes or symlinks it contains. "/" maps to "/index.html".
 */
export function loadAssets(dir: string): Map<string, Asset> {
  const table = new Map<string, Asset>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && statSync(full).size <= MAX_ASSET_BYTES) {
        const urlPath = "/" + relative(dir, full).split(sep).join("/");
        table.set(urlPath, {
          body: readFileSync(full),
          contentType: CONTENT_TYPES[extname(entry.name).toLowerCase()] ?? "application/octet-stream",
          immutable: urlPath.startsWith("/assets/"),
        });
      }
    }
  };
  walk(dir);
  const index = table.get("/index.html");
  if (index) table.set("/", index);
  return table;
}

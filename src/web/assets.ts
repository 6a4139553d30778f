/**
 * The page's static files, served straight from src/web/assets of the package (no build step):
 * found from this module's location, listed once, and only those names are ever served.
 */
import { readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { packageRoot } from "../util/package-root.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

export class Assets {
  readonly dir: string;
  private readonly names: Set<string>;

  constructor(dir: string = join(packageRoot(), "src", "web", "assets")) {
    this.dir = dir;
    this.names = new Set(readdirSync(dir).filter((n) => TYPES[extname(n)] !== undefined));
  }

  /** The file's bytes and type, or undefined for anything not in the asset folder. */
  get(name: string): { body: Buffer; type: string } | undefined {
    if (!this.names.has(name)) return undefined;
    return { body: readFileSync(join(this.dir, name)), type: TYPES[extname(name)]! };
  }
}

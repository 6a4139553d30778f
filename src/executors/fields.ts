/** Value types of executors.json keys: numbers and booleans as JSON values or as strings. */
import { z } from "zod";

const TRUE = new Set(["true", "yes", "1", "on"]);
const FALSE = new Set(["false", "no", "0", "off"]);

/** `true`/`false` as JSON booleans or as strings ("true", "False", "yes", "0"...). */
export function boolish(): z.ZodType<boolean, boolean | string> {
  return z.union([z.boolean(), z.string()]).transform((v, ctx) => {
    if (typeof v === "boolean") return v;
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
    ctx.addIssue({
      code: "custom",
      message: 'expected true or false (a JSON boolean or the string "true"/"false")',
    });
    return z.NEVER;
  }) as unknown as z.ZodType<boolean, boolean | string>;
}

function numberFrom(v: number | string): number {
  return typeof v === "number" ? v : v.trim() === "" ? Number.NaN : Number(v);
}

/** A number (or a numeric string) with bounds; `integer` forbids fractions. */
export function numeric(opts: {
  integer?: boolean;
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  example: string;
}): z.ZodType<number, number | string> {
  const kind = opts.integer ? "an integer" : "a number";
  const bound =
    opts.min === undefined
      ? ""
      : opts.exclusiveMin
        ? ` greater than ${opts.min}`
        : opts.max === undefined
          ? ` of at least ${opts.min}`
          : ` from ${opts.min} to ${opts.max}`;
  const message = `expected ${kind}${bound} (e.g. ${opts.example})`;
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = numberFrom(v);
    const bad =
      !Number.isFinite(n) ||
      (opts.integer === true && !Number.isInteger(n)) ||
      (opts.min !== undefined && (opts.exclusiveMin ? n <= opts.min : n < opts.min)) ||
      (opts.max !== undefined && n > opts.max);
    if (bad) {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    return n;
  }) as unknown as z.ZodType<number, number | string>;
}

/** A TCP port 1-65535. */
export function port(): z.ZodType<number, number | string> {
  return numeric({ integer: true, min: 1, max: 65535, example: "55233" });
}

/** A non-empty string without newlines (paths, names). */
export function text(what: string): z.ZodString {
  return z
    .string({ error: `expected ${what} (a string)` })
    .min(1, { error: `expected ${what}, not an empty string` })
    .regex(/^[^\n\r\0]*$/, { error: `expected ${what} on one line` });
}

/** A path on a pool: absolute, or starting with `~/` (the login user's home). */
export function remotePath(): z.ZodString {
  return text("an absolute path on the pool, e.g. /home/me/parsl").regex(
    /^(\/|~\/|~$|\$HOME(\/|$))/,
    {
      error: "expected an absolute path on the pool (starting with /, ~/ or $HOME/)",
    },
  );
}

/** Slurm/PBS wall time HH:MM:SS (Parsl's wtime_to_minutes needs exactly three parts). */
export function walltime(): z.ZodString {
  return z
    .string({ error: "expected a wall time HH:MM:SS (a string)" })
    .regex(/^\d+:[0-5]?\d:[0-5]?\d$/, { error: "expected a wall time HH:MM:SS, e.g. 01:00:00" });
}

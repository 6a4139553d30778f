/**
 * The Parsl of this machine's workflow Python ($PARSL_SIDECAR_PYTHON, else python3): what a pool's
 * environment is pinned to, since Parsl's interchange refuses workers of another release.
 */
import { programText } from "../remote/index.js";

/** Normalized release (`2025.06.30` and `2025.6.30` are one), for comparing versions. */
export function sameParsl(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return false;
  const norm = (v: string): string =>
    v
      .split("+")[0]!
      .split(".")
      .map((x) => (/^\d+$/.test(x) ? String(Number(x)) : x))
      .join(".");
  return norm(a) === norm(b);
}

/** This machine's Parsl version, or undefined when its Python has none or does not run. */
export async function callerParsl(
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const python = env.PARSL_SIDECAR_PYTHON || "python3";
  try {
    // loaded here: execa costs start-up the CLI should not pay up front
    const { execa } = await import("execa");
    const res = await execa(python, ["-c", programText("env/versions.py")], {
      timeout: 20_000,
      reject: false,
    });
    const line = res.stdout.split("\n").find((l) => l.startsWith("{"));
    const parsl = line ? (JSON.parse(line) as { parsl?: unknown }).parsl : undefined;
    return typeof parsl === "string" && parsl !== "" ? parsl : undefined;
  } catch {
    return undefined;
  }
}

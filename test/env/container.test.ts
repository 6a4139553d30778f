// Singularity/Apptainer images: left alone unless asked and missing; built with the stand-in
// builder on PATH (exact command line); the missing-builder error for real.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildCommand, ensureContainer } from "../../src/env/container.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import { cleanupTmp, FIXTURES, rejection, tmp } from "./helpers.js";

afterAll(cleanupTmp);
const host = new LocalHost();

function setup(): { dir: string; def: string; image: string } {
  const dir = tmp();
  const def = join(dir, "singularity.file");
  writeFileSync(def, "Bootstrap: docker\nFrom: python:3.11-slim\n%post\n  pip install parsl\n");
  return { dir, def, image: join(dir, "images/app.sif") };
}

describe("containers", { timeout: 60_000 }, () => {
  it("CREATE_SINGULARITY_CONTAINER false: left alone, even when missing", async () => {
    const { def, image } = setup();
    expect(await ensureContainer(host, { create: false, path: image, file: def })).toEqual({
      target: "local",
      path: image,
      action: "skipped",
      exists: false,
      builder: null,
      command: null,
    });
  });

  it("an existing image is left alone", async () => {
    const { def, image } = setup();
    mkdirSync(join(image, ".."), { recursive: true });
    writeFileSync(image, "old image");
    expect((await ensureContainer(host, { create: true, path: image, file: def })).action).toBe(
      "exists",
    );
    expect(readFileSync(image, "utf8")).toBe("old image");
  });

  it("neither singularity nor apptainer installed: a clear ENV_NOT_FOUND (for real: this machine has neither)", async () => {
    const { def, image } = setup();
    const err = await rejection(
      ensureContainer(
        host,
        { create: true, path: image, file: def },
        { hostEnv: { PATH: "/usr/local/bin:/usr/bin:/bin" } },
      ),
    );
    expect(err.code).toBe("ENV_NOT_FOUND");
    expect(err.message).toBe(
      `Cannot build ${image} on local: neither singularity nor apptainer is installed there (PATH=/usr/local/bin:/usr/bin:/bin). Install one of them, copy a built image to that path, or set CREATE_SINGULARITY_CONTAINER=false`,
    );
  });

  it("builds with `singularity build <partial> <copied def>` and renames into place", async () => {
    const { dir, def, image } = setup();
    const progress: string[] = [];
    const res = await ensureContainer(
      host,
      { create: true, path: image, file: def },
      {
        hostEnv: { PATH: `${FIXTURES}:/usr/bin:/bin` },
        onProgress: (p) => progress.push(p.message),
      },
    );
    expect(res.action).toBe("built");
    expect(res.command![0]).toBe(join(FIXTURES, "singularity"));
    expect(res.command![1]).toBe("build");
    expect(res.command![2]).toBe(join(dir, "images", `.app.sif.partial-${process.pid}.sif`));
    expect(res.command![3]).toMatch(/\/parsl-sidecar-env\.[^/]+\/container\.def$/);
    expect(readFileSync(join(dir, "images/builder-calls.log"), "utf8")).toBe(
      `singularity build ${res.command![2]} ${res.command![3]}\n`,
    );
    expect(readFileSync(image, "utf8")).toBe(`SIF-STANDIN\n${readFileSync(def, "utf8")}`);
    // the flock lock file stays beside the image (documented); no partial file is left
    expect(readdirSync(join(dir, "images")).sort()).toEqual([
      ".app.sif.parsl-sidecar.lock",
      "app.sif",
      "builder-calls.log",
    ]);
    expect(progress).toContain(`INFO:    Build complete: ${res.command![2]}`);
    expect(existsSync(res.command![3]!)).toBe(false);
  });

  it("uses apptainer when that is what is installed, with extra build args", async () => {
    const { dir, def, image } = setup();
    const bin = join(dir, "bin");
    mkdirSync(bin);
    copyFileSync(join(FIXTURES, "singularity"), join(bin, "apptainer"));
    const res = await ensureContainer(
      host,
      { create: true, path: image, file: def, buildArgs: ["--fakeroot"] },
      { hostEnv: { PATH: `${bin}:/usr/bin:/bin` } },
    );
    expect(res.builder).toBe(join(bin, "apptainer"));
    expect(readFileSync(join(dir, "images/builder-calls.log"), "utf8")).toMatch(
      /^apptainer build --fakeroot \S+\.partial-\d+\.sif \S+container\.def\n$/,
    );
  });

  it("a failing build is ENV_FAILED with the builder's message and leaves no image or partial file", async () => {
    const { dir, def, image } = setup();
    writeFileSync(def, "From: nowhere\n");
    const err = await rejection(
      ensureContainer(
        host,
        { create: true, path: image, file: def },
        { hostEnv: { PATH: `${FIXTURES}:/usr/bin:/bin` } },
      ),
    );
    expect(err.code).toBe("ENV_FAILED");
    expect(err.message).toContain("FATAL: While parsing definition");
    expect(
      readdirSync(join(dir, "images")).filter((n) => !n.startsWith(".app.sif.parsl-sidecar.lock")),
    ).toEqual([]);
  });

  it("asked to create without a definition file: ENV_INVALID", async () => {
    const { image } = setup();
    const err = await rejection(ensureContainer(host, { create: true, path: image }));
    expect(err.code).toBe("ENV_INVALID");
    expect(err.message).toContain("LOCAL_SINGULARITY_FILE is not set");
  });

  it("sudo puts `sudo -n` in front", () => {
    expect(
      buildCommand(
        "/usr/bin/singularity",
        { create: true, path: "/x.sif", sudo: true },
        "/p.sif",
        "/d.def",
      ),
    ).toEqual(["sudo", "-n", "/usr/bin/singularity", "build", "/p.sif", "/d.def"]);
  });
});

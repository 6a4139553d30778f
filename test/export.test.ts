import { describe, expect, it } from "vitest";
import * as api from "../src/index.js";

describe("public API", () => {
  it("exports exactly these names (update on purpose)", () => {
    expect(Object.keys(api).sort()).toEqual([
      "CONNECTION_ENV",
      "Daemon",
      "ErrorCodes",
      "PROTOCOL_VERSION",
      "SidecarClient",
      "SidecarError",
      "VERSION",
      "isSidecarError",
      "resolveConnectionFile",
    ]);
  });
});

// The size gate: what a page downloads before `Keybound.init()` resolves (gzip -9) stays
// within the budget recorded in js/size-budget.json, which may only go down; the
// fallback signer is not part of it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FALLBACK, START, budget, sizes, total } from "../../js/size.mjs";
import { SDK_MISSING, sdkBuilt } from "./lib/harness.mjs";

describe("the SDK's download", { skip: !sdkBuilt && SDK_MISSING }, () => {
  test("start bytes stay within js/size-budget.json", () => {
    const start = total(sizes(START));
    const limit = budget();
    assert.ok(start <= limit, `start is ${start} B gzip -9, the budget ${limit} B`);
  });

  test("the fallback signer is a file of its own, not loaded at start", () => {
    assert.equal(FALLBACK.length, 2, FALLBACK.join(" "));
    for (const file of FALLBACK) assert.match(file, /fallback/);
    assert.ok(!START.some((file) => file.includes("fallback")));
    assert.ok(total(sizes(FALLBACK)) > 0);
  });
});

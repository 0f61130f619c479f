// The SDK's promise traces skip the formatter in place (source-map-support's under ts-node); others do not.
import { strict as assert } from "assert";
import { test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { leavePromiseTracesUnformatted, refusal } from "../../components/traces";

// The SDK's own function, as the program's resources call it.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { debuggablePromise } = require("@pulumi/pulumi/runtime/debuggable") as {
    debuggablePromise<T>(p: Promise<T>, ctx: unknown): Promise<T>;
};

type Format = (error: Error, frames: NodeJS.CallSite[]) => unknown;

/** Runs `body` with a formatter in place that counts its calls and marks what it formats. */
function withCountingFormatter(body: (calls: () => number) => void): void {
    const before = Error.prepareStackTrace;
    let calls = 0;
    const counting: Format = (error, frames) => { calls++; return `formatted: ${String(error)} (${frames.length} frames)`; };
    Error.prepareStackTrace = counting;
    try {
        body(() => calls);
    } finally {
        Error.prepareStackTrace = before;
    }
}

/** The trace the SDK keeps on a promise it tracks (on the promise given, not the one returned). */
const trackedTrace = () => {
    const p = Promise.resolve(1);
    void debuggablePromise(p, "a test");
    return (p as unknown as { _debugStackTrace: string })._debugStackTrace;
};

test("the SDK's promise traces are not formatted; an error's trace still is", () => {
    withCountingFormatter(calls => {
        leavePromiseTracesUnformatted({});
        assert.equal(trackedTrace(), "Error");
        assert.equal(calls(), 0, "the formatter in place is not called for a promise the SDK tracks");
        const stack = new Error("a real failure").stack;
        assert.match(stack ?? "", /^formatted: Error: a real failure \(\d+ frames\)$/);
        assert.equal(calls(), 1);
    });
});

test("without the change, the formatter formats every promise trace (the cost it saves)", () => {
    withCountingFormatter(calls => {
        assert.match(trackedTrace(), /^formatted: Error \(\d+ frames\)$/);
        assert.equal(calls(), 1);
    });
});

test("with the leak report asked for, promise traces are formatted as before", () => {
    withCountingFormatter(calls => {
        leavePromiseTracesUnformatted({ PULUMI_DEBUG_PROMISE_LEAKS: "1" });
        assert.match(trackedTrace(), /^formatted: Error/);
        assert.equal(calls(), 1);
    });
});

test("with no formatter in place, nothing is installed", () => {
    const before = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    try {
        leavePromiseTracesUnformatted({});
        assert.equal((Error as { prepareStackTrace?: unknown }).prepareStackTrace, undefined);
        assert.match(trackedTrace(), /at debuggablePromise/, "V8's own format, frames and all");
    } finally {
        Error.prepareStackTrace = before;
    }
});

test("a function of another file named debuggablePromise is formatted as any other", () => {
    withCountingFormatter(calls => {
        leavePromiseTracesUnformatted({});
        function debuggablePromise() {
            return new Error().stack;
        }
        assert.match(debuggablePromise() ?? "", /^formatted:/);
        assert.equal(calls(), 1);
    });
});

test("a refusal reaches the SDK's error report as its message alone: no stack to format", () => {
    // The SDK's own report of an error that stops the program, as it writes it to its tracing span.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { defaultErrorMessage } = require("@pulumi/pulumi/cmd/run/error") as { defaultErrorMessage(err: unknown): string };
    const message = "refused before any change:\n  - control-plane:nodes: removes control1, control2 of the 3 etcd members at once";
    const error = refusal(message);
    assert.ok(pulumi.RunError.isInstance(error), "a RunError: the SDK logs its message and hides any stack");
    assert.equal(error.message, message);
    assert.equal(defaultErrorMessage(error), message);
    // A RunError made as before would have its stack formatted there.
    assert.notEqual(defaultErrorMessage(new pulumi.RunError(message)), message);
});

// Stack traces the program pays for and never shows.
//
// The Node.js SDK takes a stack trace for every promise it tracks (`debuggablePromise` in
// @pulumi/pulumi/runtime/debuggable.js: several per resource, thousands a run), kept only for the promise leak
// report that PULUMI_DEBUG_PROMISE_LEAKS=1 prints. Under ts-node each trace is formatted at once by
// source-map-support, which maps every frame through the source maps: in a no-change `up` of this program that
// was about half of the CPU the program spends constructing its steps, and a second of its wall time (`npm run
// bench` before and after). Unless that report is asked for, those traces are left unformatted; every other trace
// (an error's, the resources' source positions the SDK sends the engine) is formatted as before.
//
// A refusal (bad config, a change that would lose quorum, a host that cannot be probed) is a RunError, whose
// stack the SDK never shows; it is made without one, since the SDK still formats the stack for its tracing
// span (`defaultErrorMessage` in @pulumi/pulumi/cmd/run, 3.276.0: `util.inspect(err, { colors: true })`), and
// on Node 20 that loops until the string is too long (nodejs/node#64011) on a frame of the SDK's own as its
// source map names it (`node_modules/@pulumi/resource.ts`, no folder after the scope): 30 s of CPU and half a
// GB of memory before the refusal reached the user.
import * as pulumi from "@pulumi/pulumi";

type Format = (error: Error, frames: NodeJS.CallSite[]) => unknown;

/** Whether a trace is one the SDK takes for a promise it tracks: its first frame is `debuggablePromise`. */
export function isPromiseTrace(frames: NodeJS.CallSite[]): boolean {
    const top = frames[0];
    return top !== undefined && top.getFunctionName() === "debuggablePromise" &&
        /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]debuggable\.js$/.test(top.getFileName() ?? "");
}

/**
 * Installs, over the formatter in place (source-map-support's under ts-node), one that formats the SDK's
 * promise traces as the bare error line and every other trace as before. Nothing changes when the leak report
 * is asked for (`PULUMI_DEBUG_PROMISE_LEAKS`) or when no formatter is in place (V8's own is cheap).
 */
export function leavePromiseTracesUnformatted(env: NodeJS.ProcessEnv = process.env): void {
    const format: Format | undefined = Error.prepareStackTrace;
    if (format === undefined || env.PULUMI_DEBUG_PROMISE_LEAKS) {
        return;
    }
    Error.prepareStackTrace = (error, frames) => isPromiseTrace(frames) ? String(error) : format(error, frames);
}

/** An error that stops the program with `message` alone: a RunError without a stack (see above). */
export function refusal(message: string): pulumi.RunError {
    const error = new pulumi.RunError(message);
    error.stack = "";
    return error;
}

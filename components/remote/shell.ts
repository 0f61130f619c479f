// Shell building blocks shared by every remote step. Each step is a bash script (shellcheck-clean, strict
// mode) run through `sudo bash -c`, so the script text is plain data that tests can lint and compare.

/** Quotes a value for bash: single quotes, with embedded single quotes closed and escaped. */
export function shq(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A bash script in strict mode: the header every generated script starts with. */
export function script(...body: string[]): string {
    return ["#!/usr/bin/env bash", "set -euo pipefail", ...body].join("\n") + "\n";
}

/** The command line that runs a script as root on the host; stdin (file content) passes through. */
export function asRoot(text: string): string {
    return `sudo -n bash -c ${shq(text)}`;
}

/**
 * A bounded poll: runs `probe` every half second until it succeeds, or fails after `timeoutSeconds`
 * with a message that says what it waited for, followed by the output of `diagnose`.
 */
export function waitUntil(what: string, probe: string, timeoutSeconds: number, diagnose?: string): string[] {
    return [
        `echo ${shq(`waiting up to ${timeoutSeconds}s for ${what}`)}`,
        `deadline=$((SECONDS + ${timeoutSeconds}))`,
        `until ${probe}; do`,
        `  if (( SECONDS >= deadline )); then`,
        `    echo ${shq(`timed out after ${timeoutSeconds}s waiting for ${what}`)} >&2`,
        ...(diagnose ? [`    ${diagnose} >&2 || true`] : []),
        `    exit 1`,
        `  fi`,
        `  sleep 0.5`,
        `done`,
        `echo ${shq(`ready: ${what}`)}`,
    ];
}
